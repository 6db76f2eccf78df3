"""colab/links.py: the notebooks' install cell and "Open in Colab" badge come from the
repository URL in pyproject.toml (or VBAYES_REPO)."""

import copy
import importlib.util
import json
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO

COLAB = REPO / "colab"
NOTEBOOKS = sorted(COLAB.glob("*.ipynb"))


@pytest.fixture(scope="module")
def links():
  spec = importlib.util.spec_from_file_location("colab_links", COLAB / "links.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _install_cell(notebook: dict) -> str:
  return next("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")


def test_the_committed_notebooks_match_pyproject(links, monkeypatch):
  monkeypatch.delenv(links.ENV, raising=False)
  assert links.main(["links.py", "--check"]) == 0
  url = links.repository_url()
  for path in NOTEBOOKS:
    assert f'os.environ.get("VBAYES_REPO") or "{url}"' in _install_cell(json.loads(path.read_text()))


def test_a_github_url_gives_each_notebook_its_badge_and_install_url(links):
  url = "https://github.com/someone/vbayes"
  for path in NOTEBOOKS:
    original = json.loads(path.read_text())
    with_url = links.render(copy.deepcopy(original), path.name, url)
    title = "".join(with_url["cells"][0]["source"]).splitlines()
    assert title[0] == "".join(original["cells"][0]["source"]).splitlines()[0]
    assert title[1] == "" and title[3] == ""
    assert title[2] == ("[![Open In Colab](https://colab.research.google.com/assets/"
                        "colab-badge.svg)](https://colab.research.google.com/github/someone/"
                        f"vbayes/blob/main/colab/{path.name})")
    assert f'os.environ.get("VBAYES_REPO") or "{url}"' in _install_cell(with_url)
    # Rendering again is a no-op, and rendering without a URL gives the committed one back.
    assert links.render(copy.deepcopy(with_url), path.name, url) == with_url
    assert links.render(with_url, path.name, links.repository_url()) == original


def test_a_url_off_github_installs_from_it_without_a_badge(links):
  path = NOTEBOOKS[0]
  notebook = links.render(json.loads(path.read_text()), path.name, "https://example.org/vbayes.git")
  assert not any(links.BADGE_MARK in "".join(c["source"]) for c in notebook["cells"])
  assert 'or "https://example.org/vbayes.git"' in _install_cell(notebook)


def test_the_install_cell_without_a_url_stops_with_one_error_line(links, tmp_path):
  """Where vbayes is missing and no URL is known, the cell exits 1 with one line naming
  VBAYES_REPO, before calling pip."""
  cell = links.render(json.loads(NOTEBOOKS[0].read_text()), NOTEBOOKS[0].name, "")
  script = tmp_path / "cell.py"
  script.write_text("import importlib.util as u\n"
                    "find = u.find_spec\n"
                    "u.find_spec = lambda name, *a: None if name == 'vbayes' else find(name, *a)\n"
                    "import subprocess\n"
                    "subprocess.run = None  # pip must not be reached\n"
                    + _install_cell(cell))
  result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, check=False)
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error:") and "VBAYES_REPO" in lines[0]
