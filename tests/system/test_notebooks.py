"""The colab/ notebooks, executed top to bottom by nbclient on the JAX CPU backend
with their size switch at "tiny" and tiny generated tfds caches; and the committed
notebooks carry the outputs of a real run."""

import re
import traceback

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from tests.helpers import fake_data
from tests.helpers import notebooks as run_notebooks

pytestmark = pytest.mark.slow  # the edit loop runs -m "not slow"

COLAB = run_notebooks.COLAB
FIGURES = {"01_tour": 4, "02_estimators": 2, "03_avb_4frames": 2}  # figures each one shows
NOTEBOOKS = tuple(FIGURES)


def text_of(nb) -> str:
  parts = []
  for cell in nb.cells:
    for out in cell.get("outputs", []):
      parts.append(out.get("text", ""))
      parts.extend(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
  return "\n".join(parts)


def images_of(nb) -> int:
  return sum("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))


@pytest.fixture(scope="module")
def executed_notebooks(tmp_path_factory):
  """A folder with NAME.ipynb, each colab/ notebook executed at its tiny size in a kernel
  of its own (run_notebooks.execute), or NAME.error (why it failed)."""
  out = tmp_path_factory.mktemp("notebooks")
  data_dir = fake_data.write_tiny_tfds(tmp_path_factory.mktemp("notebook_tfds"))
  for name in NOTEBOOKS:
    try:
      nbformat.write(run_notebooks.execute(name, out, data_dir), out / f"{name}.ipynb")
    except Exception:  # pylint: disable=broad-except
      (out / f"{name}.error").write_text(traceback.format_exc())
  return out


def test_every_notebook_is_run():
  assert tuple(sorted(FIGURES)) == tuple(sorted(p.stem for p in COLAB.glob("*.ipynb")))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, executed_notebooks):
  """Each in a fresh kernel. The tour trains on every device: two host CPU devices
  exercise the sharded step."""
  error = executed_notebooks / f"{name}.error"
  assert not error.exists(), error.read_text()[-5000:]
  nb = nbformat.read(executed_notebooks / f"{name}.ipynb", as_version=4)
  devices = run_notebooks.DEVICES.get(name, 1)
  text = text_of(nb)
  assert "backend 'cpu'" in text and f"{devices} device(s)" in text
  assert images_of(nb) == FIGURES[name]
  assert not re.search(r"\bnan\b", text.lower()), "a NaN in the printed numbers"


def test_size_switch_rejects_an_unknown_size(tmp_path, tiny_tfds):
  with pytest.raises(CellExecutionError, match="VBAYES_NOTEBOOK_SIZE must be one of"):
    run_notebooks.execute("03_avb_4frames", tmp_path, tiny_tfds, size="huge")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_carries_a_full_run(name):
  """Opened on the web, the notebook shows its figures and numbers from the default
  ("full") sizes, and its first cell names the hardware that made them."""
  nb = nbformat.read(COLAB / f"{name}.ipynb", as_version=4)
  first = nb.cells[0].source
  assert "Outputs below were made" in first and "__TIMES__" not in first
  assert not any("__READING__" in cell.source for cell in nb.cells)
  assert images_of(nb) == FIGURES[name]
  outputs = text_of(nb)
  assert "size full" in outputs and "size tiny" not in outputs
  assert not any(out.get("output_type") == "error" for c in nb.cells
                 for out in c.get("outputs", []))
