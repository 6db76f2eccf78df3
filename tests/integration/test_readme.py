"""The README and docs/ as a user meets them: every link leads to a file, the library's
snippet runs, and the set-up commands run as written, at a tiny size (the training run
is the session's shared run, tests/helpers/cli_runs.py)."""

import contextlib
import io
import json
import re
import shutil

import pytest

from tests.helpers import readme
from tests.helpers.command_line import run_main, succeeded
from tests.helpers.paths import REPO
from vbayes import datasets

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), REPO / "bench" / "README.md"]


def test_every_relative_link_leads_to_a_file():
  missing = []
  for page in PAGES:
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
      if re.match(r"[a-z]+://", target) or target.startswith("#"):
        continue
      path = (page.parent / target.split("#", 1)[0]).resolve()
      if not path.exists():
        missing.append(f"{page.relative_to(REPO)}: {target}")
  assert not missing, missing


def test_the_library_snippet_runs_and_the_bound_holds():
  """The README's python block, as written: L_8 >= the 8-sample ELBO per image."""
  code, = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(code, "README.md", "exec"), {"__name__": "__main__"})  # pylint: disable=exec-used
  assert out.getvalue().split() == ["(4,)", "(4,)", "True"]


def test_the_set_up_commands_name_scripts_that_exist():
  commands = readme.set_up_commands()
  assert [c[0] for c in commands] == ["experiments.train", "experiments.evaluate"]
  for module, *_ in commands:
    assert (REPO / (module.replace(".", "/") + ".py")).is_file(), module
  # The test command CI runs (.ci/run greps this line).
  assert re.search(r'^pip install -e "\.\[test\]" && python -m pytest -q$',
                   (REPO / "README.md").read_text(), re.M)


@pytest.mark.slow
def test_the_set_up_commands_run_as_written(cli_run, tmp_path):
  """The README's training command (the shared run, tiny) wrote a finished run; its
  evaluation command then evaluates it by AIS and writes its JSON."""
  result, trained = cli_run("shared")
  succeeded(result)
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  final = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert "test_nll" in final and "test_nll_quadrature" in final
  (module, *args), = [c for c in readme.set_up_commands() if c[0] == "experiments.evaluate"]
  args = [f"--workdir={workdir}" if a.startswith("--workdir=") else a for a in args]
  data_dir, = [a.split("=", 1)[1] for a in result["argv"] if a.startswith("--data_dir=")]
  out = run_main([*args, *readme.TINY_EVALUATE, "--images=2"], module.split(".")[1],
                 env={datasets.DATA_DIR_ENV: data_dir})
  succeeded(out)
  line = json.loads(out["stdout"].strip().splitlines()[-1])
  assert line["method"] == "ais" and line == json.loads(
      (workdir / "evaluation_ais.json").read_text())
