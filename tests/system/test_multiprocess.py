"""One run over several processes (vbayes.distributed): 2 CPU processes of 2 devices
each against 1 process of 4, through the command line (tests/system/scripts/
multiprocess_check.py starts the processes)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.helpers.paths import REPO, TESTS

from vbayes import config as config_lib
from vbayes.training import loop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def multiprocess_runs(tmp_path_factory) -> tuple:
  """(out, results) of tests/system/scripts/multiprocess_check.py: its workdirs and each
  command's exit status and output."""
  out = tmp_path_factory.mktemp("multiprocess")
  script = TESTS / "system" / "scripts" / "multiprocess_check.py"
  done = subprocess.run([sys.executable, str(script), str(out)],
                        env={**os.environ, "PYTHONPATH": str(REPO)},
                        capture_output=True, text=True, timeout=900, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  return out, json.loads((out / "results.json").read_text())


def _ok(results: dict, name: str, processes: int = 2) -> list[str]:
  """Each process's standard output, less gloo's connection notices."""
  outputs = []
  for i in range(processes):
    r = results[f"{name}/{i}"]
    assert r["code"] == 0, (name, i, r["stderr"])
    outputs.append("".join(line for line in r["stdout"].splitlines(keepends=True)
                           if "[Gloo]" not in line and "peer ranks" not in line))
  return outputs


def _params(workdir):
  config = config_lib.TrainConfig.from_dict(json.loads((workdir / "config.json").read_text()))
  return jax.device_get(loop.restore_params(workdir, config))


def test_two_processes_train_resume_and_equal_one_process(multiprocess_runs):
  """2 processes x 2 devices, trained 2 epochs then resumed to 4, end with the
  parameters of 1 process x 4 devices trained 4 epochs straight: the same global batch
  sharded over the same 4 devices, the gradient all-reduced across processes (gloo)
  instead of within one. Equal within float32 reduction-order rounding (rtol 1e-5,
  atol 1e-6; 4 devices' partial sums in another order), and so are the test metrics.
  Only process 0 prints; the workdir is the one a single process writes."""
  out, results = multiprocess_runs
  first, second = _ok(results, "train_two_2_epochs"), _ok(results, "resume_two_4_epochs")
  assert "in 2 processes" in first[0] and first[1] == "" and second[1] == ""
  assert "resumed from step 100" in second[0]
  single = _ok(results, "train_one", processes=1)[0]
  assert "in 2 processes" not in single
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               _params(out / "two"), _params(out / "one"))
  records = [json.loads(line) for line in (out / "two" / "metrics.jsonl").read_text().splitlines()]
  reference = [json.loads(line) for line in (out / "one" / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [r["step"] for r in reference]
  for name in ("test_nll", "test_elbo", "test_nll_quadrature"):
    np.testing.assert_allclose(records[-1][name], reference[-1][name], rtol=1e-5)
  written = lambda workdir: sorted(p.name for p in workdir.iterdir()
                                  if not p.name.startswith("evaluation_"))
  assert written(out / "two") == written(out / "one")


def test_two_processes_share_an_evaluation(multiprocess_runs):
  """experiments.evaluate --method=ais on 4 images in batches of 1: each of 2 processes
  anneals 2 (batches 0, 2 and 1, 3), the per-image results gathered, and the JSON line
  (printed and written by process 0 only) equals that of one process."""
  out, results = multiprocess_runs
  two = _ok(results, "evaluate_two")
  one = _ok(results, "evaluate_one", processes=1)[0]
  assert two[1] == ""
  line_two, line_one = (json.loads(text.strip().splitlines()[-1]) for text in (two[0], one))
  assert line_two.pop("processes") == 2 and "processes" not in line_one
  for name in ("nll", "nll_stderr", "acceptance"):
    np.testing.assert_allclose(line_two.pop(name), line_one.pop(name), rtol=1e-5)
  for line in (line_two, line_one):
    line.pop("workdir"), line.pop("seconds")
  assert line_two == line_one
  assert json.loads((out / "one_evaluated_by_two" / "evaluation_ais.json").read_text())[
      "processes"] == 2
