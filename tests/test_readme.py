"""The README and docs/ as a user meets them: every link leads to a file, the library's
snippet runs, and the set-up commands run as written, at a tiny size (the training run
is one of tests/test_cli.py's background runs, `readme_train`)."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vbayes import data as data_lib

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), REPO / "bench" / "README.md"]
# Appended to the README's commands so that they run in seconds on generated data.
TINY_TRAIN = ["--hidden_sizes=16", "--epochs=1", "--batch_size=20", "--eval_k=5",
              "--quadrature_points=64", "--steps_per_call=5"]
TINY_EVALUATE = ["--chains=2", "--ais_steps=5", "--pilot_chains=2"]


def set_up_commands() -> list[list[str]]:
  """The `python -m experiments...` commands of the README's "Set up" section, split
  into arguments, in their order."""
  text = (REPO / "README.md").read_text()
  section = text.split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
  blocks = re.findall(r"```\n(.*?)```", section, re.S)
  lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
  return [shlex.split(line)[2:] for line in lines if line.startswith("python -m experiments.")]


def readme_train_flags() -> list[str]:
  """The README's training command's flags but its workdir and offline data (the test
  gives its own), then TINY_TRAIN."""
  (_, *args), = [c for c in set_up_commands() if c[0] == "experiments.train"]
  kept = [a for a in args if not a.startswith(("--workdir=", "--manual_dir="))]
  return [*kept, *TINY_TRAIN]


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
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, timeout=300, check=False,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.split() == ["(4,)", "(4,)", "True"]


def test_the_set_up_commands_name_scripts_that_exist():
  commands = set_up_commands()
  assert [c[0] for c in commands] == ["experiments.train", "experiments.evaluate"]
  for module, *_ in commands:
    assert (REPO / (module.replace(".", "/") + ".py")).is_file(), module
  # The test command CI runs (.ci/run greps this line).
  assert re.search(r'^pip install -e "\.\[test\]" && python -m pytest -q$',
                   (REPO / "README.md").read_text(), re.M)


@pytest.mark.slow
def test_the_set_up_commands_run_as_written(cli_runs, tmp_path):
  """The README's training command (background run `readme_train`, tiny) wrote a
  finished run; its evaluation command then evaluates it by AIS and writes its JSON."""
  root, results = cli_runs
  from tests import test_cli  # pylint: disable=import-outside-toplevel
  result = results[list(test_cli.RUNS).index("readme_train")]
  assert result["code"] == 0, (result["argv"], result["stderr"][-3000:])
  workdir = tmp_path / "run"
  shutil.copytree(root / "readme_train", workdir)
  final = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert "test_nll" in final and "test_nll_quadrature" in final
  (module, *args), = [c for c in set_up_commands() if c[0] == "experiments.evaluate"]
  args = [f"--workdir={workdir}" if a.startswith("--workdir=") else a for a in args]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO),
         data_lib.DATA_DIR_ENV: str(root / "fake")}
  env.pop(data_lib.MANUAL_DIR_ENV, None)  # the run's data come from the generated cache alone
  out = subprocess.run([sys.executable, "-m", module, *args, *TINY_EVALUATE, "--images=2"],
                       cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                       env=env)
  assert out.returncode == 0, out.stderr[-3000:]
  line = json.loads(out.stdout.strip().splitlines()[-1])
  assert line["method"] == "ais" and line == json.loads(
      (workdir / "evaluation_ais.json").read_text())
