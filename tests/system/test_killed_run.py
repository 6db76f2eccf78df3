"""A run killed with SIGKILL in the middle of training resumes, in a new process, to the
parameters of the same run uninterrupted, bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.helpers import fake_data
from tests.helpers.command_line import run_main, succeeded
from tests.helpers.paths import REPO
from vbayes import config as config_lib, datasets
from vbayes.training import checkpoint
from vbayes.training import step as training_step

pytestmark = pytest.mark.slow
# Big enough nets that a kill lands between the second epoch's checkpoint and the last.
KILLED = ["--epochs=12", "--batch_size=20", "--hidden_sizes=256,256", "--eval_k=2",
          "--quadrature_points=64", "--steps_per_call=5"]


def _restore_state(workdir):
  config = config_lib.TrainConfig.from_dict(json.loads((workdir / "config.json").read_text()))
  like = training_step.init_state(jax.random.key(0), config)
  ckpt = checkpoint.Checkpointer(workdir / "checkpoints")
  state, _ = ckpt.restore(like, jax.random.key(0))
  ckpt.close()
  return state


def test_run_killed_with_sigkill_resumes_to_the_same_parameters(tmp_path):
  """Killed (in a process of its own) after its second epoch's checkpoint and run again,
  it ends with the parameters of the same run uninterrupted, bit for bit."""
  data_dir = fake_data.fake_mnist(tmp_path / "tfds")
  args = [f"--data_dir={data_dir}", *KILLED]
  succeeded(run_main([f"--workdir={tmp_path / 'uninterrupted'}", *args]))
  workdir = tmp_path / "killed"
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
  env.pop(datasets.MANUAL_DIR_ENV, None)
  stderr_path = tmp_path / "killed.stderr"  # a file: an unread pipe could fill and block
  with open(stderr_path, "w") as stderr:
    proc = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-m", "experiments.train", f"--workdir={workdir}", *args], cwd=REPO,
        env=env, stdout=subprocess.DEVNULL, stderr=stderr)
  deadline = time.time() + 240
  while not (workdir / "checkpoints" / "40").is_dir():  # 2 epochs done
    assert proc.poll() is None and time.time() < deadline, (
        "run ended before it could be killed", stderr_path.read_text()[-3000:])
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  steps_at_kill = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
  assert max(steps_at_kill) < 240, "the run finished before the kill"

  resumed = run_main([f"--workdir={workdir}", *args])
  succeeded(resumed)
  assert "resumed from step" in resumed["stdout"]
  a, b = _restore_state(tmp_path / "uninterrupted"), _restore_state(workdir)
  assert int(a["step"]) == int(b["step"]) == 240
  jax.tree.map(np.testing.assert_array_equal, a, b)
