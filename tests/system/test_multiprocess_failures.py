"""A run of 2 processes that cannot work ends every process with one `error:` line, fast:
a peer that never joins, two processes given one id, processes started with different
flags, a peer killed or stopped (SIGSTOP) while training; SIGTERM (to one process or all) and SIGINT stop
every process at the same step after a checkpoint. All scenarios run at once (most of
their time is waiting for a timeout), each process of experiments.train on 1 CPU device."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers.paths import REPO
from vbayes import distributed, liveness

pytestmark = pytest.mark.slow

TRAIN = ["--dataset=4frames", "--latent_dim=2", "--hidden_sizes=16", "--batch_size=20",
         "--eval_k=10", "--steps_per_call=10"]
LONG = [*TRAIN, "--epochs=400"]  # trains until a signal stops it
# Which processes get which signal once training has logged: (scenario, signal, ids).
SIGNALLED = (("killed", signal.SIGKILL, (1,)), ("stopped", signal.SIGSTOP, (1,)),
             ("sigterm_one", signal.SIGTERM, (1,)), ("sigint", signal.SIGINT, (0, 1)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(args, process_id, port, stderr_path, module="train"):
  """experiments.<module> (train) as process `process_id` of 2, its stderr written to
  stderr_path (a file: a pipe nobody reads while the test waits could fill and block it)."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "1",
         "PYTHONPATH": str(REPO)}
  with open(stderr_path, "w") as stderr:
    return subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-m", f"experiments.{module}", *args, "--num_processes=2",
         f"--process_id={process_id}", f"--coordinator_address=localhost:{port}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr)


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
  """{scenario: {"codes", "stderr" (one per process), "seconds" (from the scenario's start,
  or from its signal, to each process's end)}}."""
  out = tmp_path_factory.mktemp("multiprocess_failures")
  started, processes = {}, {}

  def start(name, ids_and_args, module="train"):
    port = _free_port()
    started[name] = time.time()
    processes[name] = {i: _start([f"--workdir={out / name}", *args], process_id, port,
                                 out / f"{name}_{i}.stderr", module)
                       for i, (process_id, args) in enumerate(ids_and_args)}

  start("missing", [(0, TRAIN)])
  start("same_id", [(0, TRAIN), (0, TRAIN)])  # both as process 0: no process 1 joins
  start("disagree", [(0, TRAIN), (1, [*TRAIN, "--latent_dim=3"])])
  # Evaluate checks before it reads anything (it hung ~100 s, then aborted).
  start("evaluate_disagree", [(0, ["--method=is", "--k=10"]), (1, ["--method=is", "--k=20"])],
        module="evaluate")
  for name, _, _ in SIGNALLED:
    start(name, [(0, LONG), (1, LONG)])
  waiting = {name: (sig, ids) for name, sig, ids in SIGNALLED}
  ended, deadline = {}, time.time() + 300
  while len(ended) < sum(map(len, processes.values())) and time.time() < deadline:
    for name, (sig, ids) in list(waiting.items()):
      metrics = out / name / "metrics.jsonl"
      if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:  # training
        for i in ids:
          processes[name][i].send_signal(sig)
        started[name] = time.time()
        del waiting[name]
    for name, group in processes.items():
      for i, process in group.items():
        if (name, i) not in ended and process.poll() is not None:
          ended[name, i] = time.time()
    for name, sig, ids in SIGNALLED:  # a stopped process ends when the others have
      if (sig == signal.SIGSTOP and name not in waiting and
          all((name, i) in ended for i in processes[name] if i not in ids)):
        for i in ids:
          processes[name][i].kill()
    time.sleep(0.1)
  results = {}
  for name, group in processes.items():
    for process in group.values():
      if process.poll() is None:
        process.kill()
    results[name] = {"codes": [p.wait() for p in group.values()],
                     "stderr": [(out / f"{name}_{i}.stderr").read_text() for i in group],
                     "seconds": [ended.get((name, i), float("inf")) - started[name]
                                 for i in group]}
  return results


def _error_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.startswith("error:")]


def _ends_with_one_error_line(result: dict, message: str, processes=(0, 1),
                              within: float = 60):
  for i in processes:
    stderr = result["stderr"][i]
    assert result["codes"][i] == 1, (i, stderr[-2000:])
    assert "Traceback" not in stderr and "Aborted" not in stderr, (i, stderr[-2000:])
    lines = _error_lines(stderr)
    assert len(lines) == 1 and message in lines[0], (i, stderr[-2000:])
    assert result["seconds"][i] < within, (i, result["seconds"])


def test_a_peer_that_never_joins_ends_the_run_after_the_join_timeout(scenarios):
  # The join timeout, plus the start of a process (its imports) on a busy machine.
  _ends_with_one_error_line(scenarios["missing"], "did not all join the coordinator",
                            processes=(0,), within=distributed.JOIN_TIMEOUT_S + 45)


def test_two_processes_with_one_id_end_the_run(scenarios):
  _ends_with_one_error_line(scenarios["same_id"], "each with its own --process_id",
                            within=distributed.JOIN_TIMEOUT_S + 45)


def test_processes_started_with_other_flags_name_the_flag(scenarios):
  result = scenarios["disagree"]
  _ends_with_one_error_line(result, "runs with --latent_dim = ")
  assert "'3' and process 0 with '2'" in result["stderr"][0]
  assert "'2' and process 1 with '3'" in result["stderr"][1]


def test_evaluate_processes_started_with_other_flags_name_the_flag(scenarios):
  _ends_with_one_error_line(scenarios["evaluate_disagree"], "runs with --k = ")


def test_a_peer_killed_while_training_ends_the_other(scenarios):
  result = scenarios["killed"]
  assert result["codes"][1] == -signal.SIGKILL
  _ends_with_one_error_line(result, "another process of the run stopped", processes=(0,))


def test_a_peer_stopped_while_training_ends_the_other_before_jax_aborts_it(scenarios):
  """SIGSTOP: process 1 lives but answers nothing; process 0 ends with one line within
  vbayes' SILENT_S (JAX's heartbeat timeout would abort it a little later)."""
  result = scenarios["stopped"]
  _ends_with_one_error_line(result, "process 1 of the run has not answered", processes=(0,),
                            within=liveness.HEARTBEAT_TIMEOUT_S + 5)  # and no abort


@pytest.mark.parametrize("name, signal_name", [("sigterm_one", "SIGTERM"),
                                               ("sigint", "SIGINT")])
def test_a_signal_stops_every_process_at_one_step_after_a_checkpoint(scenarios, name,
                                                                     signal_name):
  """SIGTERM to one process reaches the other through JAX's preemption service."""
  result = scenarios[name]
  _ends_with_one_error_line(result, "stopped the run at step")
  steps = [line.split("at step ")[1].split()[0] for s in result["stderr"]
           for line in _error_lines(s)]
  assert steps[0] == steps[1], steps
  if name == "sigint":
    assert all(signal_name in line for s in result["stderr"] for line in _error_lines(s))
