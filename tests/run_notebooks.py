"""Executes colab/ notebooks top to bottom at their tiny size, one after another, each
in a fresh kernel: `python tests/run_notebooks.py OUT_DIR DATA_DIR NAME...`.

Writes OUT_DIR/NAME.ipynb (the executed notebook) or OUT_DIR/NAME.error (why it
failed). tests/conftest.py starts it in the background when the suite collects
tests/test_notebooks.py, so that the kernels run beside the other tests.
"""

import os
import sys
import traceback
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from vbayes import data as data_lib

COLAB = Path(__file__).resolve().parent.parent / "colab"
DEVICES = {"01_tour": 2}  # the tour trains on two host CPU devices: the sharded step


def kernel_env(name: str, out_dir: Path, data_dir: Path, size: str = "tiny") -> dict:
  env = {**os.environ, "VBAYES_NOTEBOOK_SIZE": size, "JAX_PLATFORMS": "cpu",
         "VBAYES_NOTEBOOK_WORKDIR": str(out_dir / name / "runs"),
         data_lib.DATA_DIR_ENV: str(data_dir), "JAX_NUM_CPU_DEVICES": str(DEVICES.get(name, 1))}
  env.pop(data_lib.MANUAL_DIR_ENV, None)
  return env


def execute(name: str, out_dir: Path, data_dir: Path, size: str = "tiny"):
  """colab/<name>.ipynb run in a fresh kernel at `size`; raises CellExecutionError."""
  nb = nbformat.read(COLAB / f"{name}.ipynb", as_version=4)
  (out_dir / name).mkdir(parents=True, exist_ok=True)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(out_dir / name)}}).execute(
                     env=kernel_env(name, out_dir, data_dir, size))
  return nb


if __name__ == "__main__":
  out, data = map(Path, sys.argv[1:3])
  for notebook in sys.argv[3:]:
    try:
      nbformat.write(execute(notebook, out, data), out / f"{notebook}.ipynb")
    except Exception:  # pylint: disable=broad-except
      (out / f"{notebook}.error").write_text(traceback.format_exc())
