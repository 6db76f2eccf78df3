r"""IWAE training throughput at k=5 and k=50, and k=5000 evaluation throughput, each
as a fraction of the float32 matmul peak measured in the same run.

    python bench/iwae_throughput.py [--ks=5,50] [--calls=3] [--smoke]

Model: the 784-500-500-50 VAE of train_throughput.py, Bernoulli decoder, batch 100.
Training: vbayes' jitted chunk with the iwae objective (reparam estimator), Adam.
Evaluation: evaluate.importance_sampled_log_likelihood on 100 images, k=5000 in
chunks of evaluate.MAX_ROWS_PER_CHUNK decoder rows, as the main job runs it.
Only matmul FLOPs are counted: the encoder runs on B rows, the decoder on B*k
rows (its input gradient is needed in training).
Each is timed in a group with its ceilings and the peak, their calls taken in turn
(common.rates), and its fraction is against the peak measured in its own group
(*_peak_gflops; peak_gflops is the best of the groups').
Last line: one JSON object with iwae_k5_fraction_of_peak,
iwae_k50_fraction_of_peak, eval_k5000_fraction_of_peak and the raw rates, and for
each a *_matmul_ceiling_fraction: the same matmuls timed with nearly nothing else
(common.matmul_ceiling_timer, common.forward_ceiling_timer); training also gets
*_adam_ceiling_fraction, the same with Adam's update, and *_ratio_to_handwritten:
vbayes' rate over the same IWAE step written directly in JAX without vbayes
(common.handwritten_vae_timer).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import common  # bench/common.py, beside this script
from vbayes import config as config_lib
from vbayes.evaluation import importance_sampling as evaluate
from vbayes.models import build
from vbayes.models.networks import mlp

flags.DEFINE_integer("calls", 3, "Timed calls of each timer (the best is reported).")
flags.DEFINE_list("ks", ["5", "50"], "Numbers of samples k for which IWAE training is timed.")
flags.DEFINE_bool("smoke", False, "A 784-32-4 VAE on 10 images, 10 steps per call, small peak "
                  "matmuls: checks that the script runs; the numbers mean nothing.")
FLAGS = flags.FLAGS


def model_config(shapes: common.Shapes) -> config_lib.ModelConfig:
  return config_lib.ModelConfig(latent_dim=shapes.latent_dim,
                                network=mlp.Config(hidden_sizes=shapes.hidden_sizes))


def train_timer(shapes: common.Shapes, k: int, images, steps: int) -> common.Timer:
  """vbayes' IWAE-k training chunk; work in steps."""
  config = config_lib.TrainConfig(model=model_config(shapes),
                                  objective=config_lib.objective_config("iwae", k=k),
                                  batch_size=shapes.batch, steps_per_call=steps)
  return common.training_timer(config, images, steps_per_epoch=steps * 10)


def eval_chunk(batch: int) -> int:
  """Samples per evaluation step, as evaluate.evaluate picks them for this batch size."""
  return evaluate.chunk_size(5000, batch, None, evaluate.MAX_ROWS_PER_CHUNK)


def eval_timer(shapes: common.Shapes, images) -> common.Timer:
  """The k=5000 importance-sampled log-likelihood of one batch; work in images."""
  model = model_config(shapes)
  params = build(model).init(jax.random.key(0))
  x = images[:shapes.batch].astype(jnp.float32)
  chunk = eval_chunk(shapes.batch)
  run = lambda _: evaluate.importance_sampled_log_likelihood(
      params, jax.random.key(3), x, model=model, k=5000, chunk=chunk)
  return common.Timer(run, None, shapes.batch)


def main(argv):
  del argv
  jax.config.update("jax_default_matmul_precision", "highest")
  shapes = common.SMOKE if FLAGS.smoke else common.VAE
  encoder, decoder, batch = shapes
  peak_timers = lambda: (common.peak_timers(common.SMOKE_PEAK_SIZES) if FLAGS.smoke
                         else common.peak_timers())
  images = jnp.asarray((np.random.default_rng(0).random((100 * batch, 784)) < 0.13)
                       .astype(np.uint8))
  out, peaks = {"backend": jax.default_backend(), "smoke": FLAGS.smoke}, []
  for k in map(int, FLAGS.ks):
    steps, ceiling_steps = (10, 10) if FLAGS.smoke else (max(10, 2000 // k), max(10, 500 // k))
    ceiling = lambda adam, k=k, steps=ceiling_steps: common.matmul_ceiling_timer(
        encoder, decoder, batch, k=k, steps=steps, adam=adam)
    rates = common.rates({"train": train_timer(shapes, k, images, steps),
                          "handwritten": common.handwritten_vae_timer(
                              shapes, images, steps, steps_per_epoch=steps * 10, k=k),
                          "matmul": ceiling(False), "adam": ceiling(True), **peak_timers()},
                         FLAGS.calls)
    peaks.append(peak := common.peak_gflops(rates))
    flops = (common.mlp_train_flops(encoder, batch)
             + common.mlp_train_flops(decoder, batch * k, input_gradient=True))
    out[f"iwae_k{k}_steps_per_s"] = round(rates["train"], 2)
    out[f"iwae_k{k}_gflops"] = round(rates["train"] * flops / 1e9, 1)
    out[f"iwae_k{k}_peak_gflops"] = round(peak, 1)
    out[f"iwae_k{k}_fraction_of_peak"] = round(rates["train"] * flops / 1e9 / peak, 3)
    out[f"iwae_k{k}_ratio_to_handwritten"] = round(rates["train"] / rates["handwritten"], 3)
    for name in ("matmul", "adam"):
      out[f"iwae_k{k}_{name}_ceiling_fraction"] = round(rates[name] * flops / 1e9 / peak, 3)
  rows = eval_chunk(batch) * batch
  rates = common.rates({"eval": eval_timer(shapes, images),
                        "forward": common.forward_ceiling_timer(
                            decoder, rows, steps=2 if FLAGS.smoke else 50),
                        **peak_timers()}, FLAGS.calls)
  peaks.append(peak := common.peak_gflops(rates))
  macs = lambda sizes: sum(m * n for m, n in zip(sizes[:-1], sizes[1:]))
  flops_per_image = 2.0 * (macs(encoder) + 5000 * macs(decoder))
  out["eval_k5000_images_per_s"] = round(rates["eval"], 2)
  out["eval_k5000_gflops"] = round(rates["eval"] * flops_per_image / 1e9, 1)
  out["eval_k5000_peak_gflops"] = round(peak, 1)
  out["eval_k5000_fraction_of_peak"] = round(rates["eval"] * flops_per_image / 1e9 / peak, 3)
  forward_images_per_s = rates["forward"] / 5000
  out["eval_k5000_matmul_ceiling_fraction"] = round(
      forward_images_per_s * flops_per_image / 1e9 / peak, 3)
  out["peak_gflops"] = round(max(peaks), 1)
  print(json.dumps(out))


if __name__ == "__main__":
  app.run(main)
