"""Executes a colab/ notebook top to bottom, in a fresh kernel (a process of its own),
at a size its switch names, on the tfds caches of a data dir."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.helpers.paths import REPO
from vbayes import data as data_lib

COLAB = REPO / "colab"
DEVICES = {"01_tour": 2}  # the tour trains on two host CPU devices: the sharded step


def kernel_env(name: str, out_dir: Path, data_dir: Path, size: str = "tiny") -> dict:
  env = {**os.environ, "VBAYES_NOTEBOOK_SIZE": size, "JAX_PLATFORMS": "cpu",
         "PYTHONPATH": str(REPO),  # this checkout's vbayes, whichever is installed
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
