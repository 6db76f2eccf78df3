"""Runs experiments.train and experiments.evaluate as one run of 2 CPU processes with 2
devices each, beside the same run in 1 process with 4 devices, for
tests/system/test_multiprocess.py.

    python tests/system/scripts/multiprocess_check.py OUT

Phase 1: 2 processes train 2 epochs in OUT/two (then stop); 1 process trains all 4
epochs in OUT/one. Phase 2: the 2 processes resume OUT/two to 4 epochs; AIS on a copy
of OUT/one by 2 processes (OUT/one_evaluated_by_two) and by 1 (OUT/one). Writes
OUT/results.json: each command's exit status and output.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TRAIN = ["--dataset=4frames", "--latent_dim=2", "--hidden_sizes=16", "--batch_size=20",
         "--eval_k=10", "--steps_per_call=10"]
EVALUATE = ["--method=ais", "--images=4", "--batch_size=1", "--chains=4", "--ais_steps=10"]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def start(module: str, args: list[str], devices: int, process: tuple[int, int, int] | None):
  """Popen of `python -m module args` on `devices` CPU devices; process = (id, count,
  port) for one of several."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices),
         "PYTHONPATH": str(REPO)}
  if process is not None:
    index, count, port = process
    args = [*args, f"--num_processes={count}", f"--process_id={index}",
            f"--coordinator_address=localhost:{port}"]
  return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def two(module: str, args: list[str]) -> list:
  port = free_port()
  return [start(module, args, 2, (i, 2, port)) for i in range(2)]


def finish(named: dict) -> dict:
  out = {}
  for name, processes in named.items():
    for i, p in enumerate(processes):
      stdout, stderr = p.communicate(timeout=600)
      out[f"{name}/{i}"] = {"code": p.returncode, "stdout": stdout, "stderr": stderr[-4000:]}
  return out


def main(out: Path):
  out.mkdir(parents=True, exist_ok=True)
  results = finish({
      "train_two_2_epochs": two("experiments.train", [f"--workdir={out / 'two'}", *TRAIN,
                                                      "--epochs=2"]),
      "train_one": [start("experiments.train", [f"--workdir={out / 'one'}", *TRAIN,
                                                "--epochs=4"], 4, None)]})
  shutil.copytree(out / "one", out / "one_evaluated_by_two")
  results.update(finish({
      "resume_two_4_epochs": two("experiments.train", [f"--workdir={out / 'two'}", *TRAIN,
                                                       "--epochs=4"]),
      "evaluate_two": two("experiments.evaluate",
                          [f"--workdir={out / 'one_evaluated_by_two'}", *EVALUATE]),
      "evaluate_one": [start("experiments.evaluate", [f"--workdir={out / 'one'}", *EVALUATE],
                             4, None)]}))
  (out / "results.json").write_text(json.dumps(results))


if __name__ == "__main__":
  main(Path(sys.argv[1]))
