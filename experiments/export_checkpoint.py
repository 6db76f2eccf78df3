r"""Exports a finished run's parameters as a checkpoint to ship: a folder that numpy alone
reads and experiments.evaluate evaluates like a workdir.

    python -m experiments.export_checkpoint --workdir=W/one_layer_vae_k1_seed0 \
        --out=experiments/checkpoints/burda_one_layer_vae_k1 --manual_dir=../shared/data

Writes, in --out (new, or empty): config.json (the run's), params.npz (the parameters
the run was evaluated at: its best checkpoint by validation ELBO under early stopping,
else its latest; vbayes.training.params_npz), test_log_px.npy (each test image's log p(x)
from the run's evaluation, for experiments.compare) and reference.json: the run's own test
numbers from its metrics.jsonl, and the quick check tests/integration/test_shipped_checkpoints.py
recomputes (IS with k=100 on the first 100 test images, fixed keys), and the machine.
"""

import json
import os
import platform
import shutil
from pathlib import Path

import jax
from absl import flags

from experiments import common
from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes.training import final_evaluation
from vbayes.training import loop as training_loop
from vbayes.training import metrics_io, params_npz
from vbayes.training import workdir as workdir_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A finished experiments.train workdir.", required=True)
flags.DEFINE_string("out", None, "The folder to write (new, or empty).", required=True)
common.define_data_flags()

# What reference.json keeps of the run's final metrics record.
RUN_FIELDS = ("step", "epoch", "evaluated_step", "stopped_early", "test_nll", "test_nll_stderr",
              "test_elbo", "test_kl", "eval_k", "num_test_images", "active_units",
              "active_units_per_layer", "eval_seconds")


def run_summary(records: list[dict]) -> dict:
  """What the card and the study pages quote from a run's metrics.jsonl besides its test
  numbers: training time, the last training loss, the best validation ELBO and its epoch."""
  losses = [r for r in records if "train_loss" in r]
  summary = {"train_seconds": max(r.get("train_seconds", 0.0) for r in records),
             "final_train_loss": losses[-1]["train_loss"] if losses else None}
  held = [r for r in records if r.get("validation_elbo") is not None]
  if held:
    best = max(held, key=lambda r: (r["validation_elbo"], -r["step"]))
    summary.update(best_validation_elbo=best["validation_elbo"],
                   best_validation_epoch=best["epoch"])
  return summary


def machine() -> dict:
  """What the run was trained and evaluated on, as far as this process can tell (the
  export runs where the run did): processor, cores, JAX's backend and version."""
  model = platform.processor() or platform.machine()
  cpuinfo = Path("/proc/cpuinfo")
  if cpuinfo.is_file():
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")]
    model = names[0] if names else model
  device = jax.devices()[0]
  return {"cpu": model, "cores": os.cpu_count(), "backend": jax.default_backend(),
          "device": device.device_kind, "jax": jax.__version__}


def main(argv):
  del argv
  workdir, out = Path(FLAGS.workdir), Path(FLAGS.out)
  config_path = workdir / workdir_lib.CONFIG_FILE
  if not config_path.is_file():
    raise workdir_lib.WorkdirError(f"{workdir} holds no {workdir_lib.CONFIG_FILE}: give the "
                                   "--workdir of a run trained by experiments.train")
  records = metrics_io.read_metrics(workdir)
  if not records or "test_nll" not in records[-1]:
    raise workdir_lib.WorkdirError(f"the run in {workdir} has not been evaluated yet: train it "
                                   "to the end first")
  if out.exists() and (not out.is_dir() or any(out.iterdir())):
    raise workdir_lib.WorkdirError(f"{out} exists and is not an empty folder: nothing was "
                                   "written; give a new --out")
  config = config_lib.TrainConfig.from_dict(json.loads(config_path.read_text()))
  params = training_loop.restore_params(workdir, config,
                                        training_loop.evaluated_checkpoints(config))
  data = data_lib.load(config.data, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir)
  check = params_npz.reference_check(params, config, data.test, data.binarization)
  final = records[-1]
  run = {name: final[name] for name in RUN_FIELDS if name in final}
  run.update(run_summary(records))
  hardware = machine()
  out.mkdir(parents=True, exist_ok=True)
  try:
    shutil.copyfile(config_path, out / workdir_lib.CONFIG_FILE)
    params_npz.save(params, out / params_npz.PARAMS_FILE)
    if (workdir / final_evaluation.TEST_LOG_PX_FILE).is_file():
      shutil.copyfile(workdir / final_evaluation.TEST_LOG_PX_FILE,
                      out / final_evaluation.TEST_LOG_PX_FILE)
    params_npz.write_reference(out, {"check": check, "run": run, "hardware": hardware})
  except BaseException:
    for name in (workdir_lib.CONFIG_FILE, params_npz.PARAMS_FILE, params_npz.REFERENCE_FILE,
                 final_evaluation.TEST_LOG_PX_FILE):
      (out / name).unlink(missing_ok=True)
    raise
  print(json.dumps({"out": str(out), "check": check, "test_nll": run.get("test_nll")}))


if __name__ == "__main__":
  common.run(main)
