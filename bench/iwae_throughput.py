r"""IWAE training throughput at k=5 and k=50, and k=5000 evaluation throughput, each
as a fraction of the float32 matmul peak measured in the same run.

    python bench/iwae_throughput.py

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
*_adam_ceiling_fraction, the same with Adam's update.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import common  # bench/common.py, beside this script
from vbayes import config as config_lib, evaluate, grid, models

flags.DEFINE_integer("calls", 3, "Timed calls of each timer (the best is reported).")
flags.DEFINE_list("ks", ["5", "50"], "Numbers of samples k for which IWAE training is timed.")
FLAGS = flags.FLAGS
BATCH = 100
ENCODER = (784, 500, 500, 100)
DECODER = (50, 500, 500, 784)


def train_timer(k: int, images) -> common.Timer:
  """vbayes' IWAE-k training chunk; work in steps."""
  steps = max(10, 2000 // k)
  config = config_lib.TrainConfig(
      model=config_lib.ModelConfig(latent_dim=50, hidden_sizes=(500, 500)), objective="iwae",
      k=k, batch_size=BATCH, steps_per_call=steps)
  return common.training_timer(config, images, steps_per_epoch=steps * 10)


def eval_chunk() -> int:
  """Samples per evaluation step, as evaluate.evaluate picks them for batches of 100."""
  return grid.largest_divisor_at_most(5000, evaluate.MAX_ROWS_PER_CHUNK // BATCH)


def eval_timer(images) -> common.Timer:
  """The k=5000 importance-sampled log-likelihood of 100 images; work in images."""
  model = config_lib.ModelConfig(latent_dim=50, hidden_sizes=(500, 500))
  params = models.init(jax.random.key(0), model)
  x = images[:BATCH].astype(jnp.float32)
  chunk = eval_chunk()
  run = lambda _: evaluate.importance_sampled_log_likelihood(
      params, jax.random.key(3), x, model=model, k=5000, chunk=chunk)
  return common.Timer(run, None, BATCH)


def main(argv):
  del argv
  jax.config.update("jax_default_matmul_precision", "highest")
  images = jnp.asarray((np.random.default_rng(0).random((10_000, 784)) < 0.13).astype(np.uint8))
  out, peaks = {"backend": jax.default_backend()}, []
  for k in map(int, FLAGS.ks):
    ceiling = lambda adam, k=k: common.matmul_ceiling_timer(
        ENCODER, DECODER, BATCH, k=k, steps=max(10, 500 // k), adam=adam)
    rates = common.rates({"train": train_timer(k, images), "matmul": ceiling(False),
                          "adam": ceiling(True), **common.peak_timers()}, FLAGS.calls)
    peaks.append(peak := common.peak_gflops(rates))
    flops = (common.mlp_train_flops(ENCODER, BATCH)
             + common.mlp_train_flops(DECODER, BATCH * k, input_gradient=True))
    out[f"iwae_k{k}_steps_per_s"] = round(rates["train"], 2)
    out[f"iwae_k{k}_gflops"] = round(rates["train"] * flops / 1e9, 1)
    out[f"iwae_k{k}_peak_gflops"] = round(peak, 1)
    out[f"iwae_k{k}_fraction_of_peak"] = round(rates["train"] * flops / 1e9 / peak, 3)
    for name in ("matmul", "adam"):
      out[f"iwae_k{k}_{name}_ceiling_fraction"] = round(rates[name] * flops / 1e9 / peak, 3)
  rows = eval_chunk() * BATCH
  rates = common.rates({"eval": eval_timer(images),
                        "forward": common.forward_ceiling_timer(DECODER, rows),
                        **common.peak_timers()}, FLAGS.calls)
  peaks.append(peak := common.peak_gflops(rates))
  macs = lambda sizes: sum(m * n for m, n in zip(sizes[:-1], sizes[1:]))
  flops_per_image = 2.0 * (macs(ENCODER) + 5000 * macs(DECODER))
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
