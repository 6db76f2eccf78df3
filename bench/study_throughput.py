r"""Throughput of each run of a study, and its projected wall time: measured here, and
projected for one accelerator from FLOPs.

    python bench/study_throughput.py [--config=burda_table1] [--runs=...] [--calls=3]

Each run is its config's (experiments/configs/; default the Burda et al. (2016) Table 1
protocol): its model, objective and batch, vbayes' jitted training chunk
(--steps_per_call steps per call, Adam with the run's learning-rate stages) on random
binary 784-pixel images; evaluation is the importance-sampled log-likelihood of 100
images with the run's eval_k. Reported per run: training steps/s and evaluation
images/s on this machine (each the best of --calls timed calls), XLA's FLOP count of
one update (common.xla_update_flops), and:
  cpu_projected_hours  epochs * (training images / batch) / steps/s
                       + 10000 test images / images/s
  accelerator_projected_hours  the same steps at max(FLOPs / --accelerator_tflops,
      --accelerator_step_us): a projection from the stated throughput and per-step
      floor (a small-batch step is a few dozen small kernels), not a measurement.
Last line: one JSON object with every run's numbers and the float32 matmul peak
measured in the same run.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import common  # bench/common.py, beside this script
from experiments import configs
from vbayes.evaluation import importance_sampling as evaluate
from vbayes.models import build

flags.DEFINE_string("config", "burda_table1", "A study in experiments/configs/.")
flags.DEFINE_list("runs", None, "Runs of the study to time (default: all).")
flags.DEFINE_integer("calls", 3, "Timed calls of each timer (the best is reported).")
flags.DEFINE_integer("steps_per_call", 200, "Training steps per timed call.")
flags.DEFINE_float("accelerator_tflops", 10.0, "Assumed sustained float32 TFLOP/s of one "
                   "accelerator on these small matmuls, for the projection.")
flags.DEFINE_float("accelerator_step_us", 100.0, "Assumed least time of one training step "
                   "on an accelerator (microseconds), for the projection.")
flags.DEFINE_bool("smoke", False, "Two runs with 16-unit nets, 10 steps, k=50 evaluation: "
                  "checks that the script runs; the numbers mean nothing.")
FLAGS = flags.FLAGS

TEST_IMAGES = 10_000
TRAIN_IMAGES = {"mnist": 60_000, "binarized_mnist": 50_000}  # the training splits' sizes


def shrink(config):
  """The --smoke version of a run: 16-unit layers, 4 + 2 latent units, 10 samples."""
  model = config.model
  model = dataclasses.replace(model, latent_dim=4,
                              network=model.network.replace(hidden_sizes=(16,)))
  if model.prior.name == "two_layer":
    model = dataclasses.replace(model, prior=model.prior.replace(latent_dim_2=2,
                                                                 hidden_sizes_2=(16,)))
  objective = config.objective
  if hasattr(objective, "k"):
    objective = objective.replace(k=min(objective.k, 10))
  return dataclasses.replace(config, model=model, objective=objective)


def main(argv):
  del argv
  jax.config.update("jax_default_matmul_precision", "highest")
  study = configs.load(FLAGS.config)
  names = FLAGS.runs or ([n for n, _ in study.runs][::5] if FLAGS.smoke
                         else [n for n, _ in study.runs])
  steps = 10 if FLAGS.smoke else FLAGS.steps_per_call
  random_images = lambda n: jnp.asarray((np.random.default_rng(0).random((n, 784)) < 0.13)
                                        .astype(np.uint8))
  x = random_images(100).astype(jnp.float32)
  peak_timers = lambda: (common.peak_timers(common.SMOKE_PEAK_SIZES) if FLAGS.smoke
                         else common.peak_timers())  # fresh each group: their state is donated
  out = {"backend": jax.default_backend(), "smoke": FLAGS.smoke, "config": FLAGS.config,
         "runs": {},
         "accelerator_tflops": FLAGS.accelerator_tflops,
         "accelerator_step_us": FLAGS.accelerator_step_us}
  peaks = []
  for name in names:
    config = study.run(name)
    config = dataclasses.replace(shrink(config) if FLAGS.smoke else config,
                                 steps_per_call=steps)
    params = build(config.model).init(jax.random.key(0))
    eval_k = 50 if FLAGS.smoke else config.eval_k
    chunk = evaluate.chunk_size(eval_k, 100, config.model)
    eval_timer = common.Timer(
        lambda _, c=config, p=params, n=chunk, k=eval_k: evaluate.importance_sampled_log_likelihood(
            p, jax.random.key(3), x, model=c.model, k=k, chunk=n), None, 100)
    images = random_images(steps * config.batch_size)  # one epoch per call
    rates = common.rates({"train": common.training_timer(config, images, steps),
                          "eval": eval_timer, **peak_timers()}, FLAGS.calls)
    peaks.append(common.peak_gflops(rates))
    flops = common.xla_update_flops(config)
    total_steps = config.epochs * (TRAIN_IMAGES[config.data.dataset] // config.batch_size)
    accelerator_step_s = max(flops / (FLAGS.accelerator_tflops * 1e12),
                             FLAGS.accelerator_step_us * 1e-6)
    out["runs"][name] = {
        "steps_per_s": round(rates["train"], 1),
        "eval_images_per_s": round(rates["eval"], 2),
        "xla_mflops_per_update": round(flops / 1e6, 2),
        "cpu_projected_hours": round((total_steps / rates["train"]
                                      + TEST_IMAGES / rates["eval"]) / 3600, 3),
        "accelerator_projected_hours": round(total_steps * accelerator_step_s / 3600, 3),
    }
    print(name, out["runs"][name], flush=True)
  out["peak_gflops"] = round(max(peaks), 1)
  print(json.dumps(out))


if __name__ == "__main__":
  app.run(main)
