r"""Training throughput of a 784-500-500-50 VAE at batch 100, as a fraction of the
float32 matmul peak measured in the same run.

    python bench/train_throughput.py [--steps_per_call=500] [--calls=5] [--smoke]
    python bench/train_throughput.py --network=conv    # a conv VAE, XLA's FLOP count

Last line: one JSON object with steps_per_s, gflops, peak_gflops, fraction_of_peak,
and two ceilings (common.matmul_ceiling_timer): matmul_ceiling_* times the same
network's matmuls with ReLU and SGD and nothing else, what this machine's matmul
kernels allow a step of these shapes; adam_ceiling_* the same with Adam, what they
allow any Adam-trained step of these shapes. The step, both ceilings and the peak
are timed in turn (common.rates), the best of --calls calls each, with
handwritten_*: the same VAE step written directly in JAX without vbayes
(common.handwritten_vae_timer), and ratio_to_handwritten, vbayes' rate over it.
Only matmul FLOPs are counted (forward, weight and input gradients; no input
gradient for the data): 737 MFLOP per step. The step is vbayes' own jitted
training chunk (ELBO, analytic KL, Bernoulli decoder, Adam), data on the device.
Matmuls run at float32 ("highest") precision on every backend, peak included.
"""

import json
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import common  # bench/common.py, beside this script
from vbayes import config as config_lib
from vbayes.evaluation import importance_sampling
from vbayes.models import build, conv_nets
from vbayes.models.networks import conv
from vbayes.models.networks import mlp

flags.DEFINE_integer("steps_per_call", 500, "Steps fused per jitted call.")
flags.DEFINE_integer("calls", 5, "Timed calls of each timer (the best is reported).")
flags.DEFINE_enum("network", "mlp", ("mlp", "conv"), "mlp: the 784-500-500-50 VAE and its "
                  "ceilings; conv: a conv VAE (32,64 channels, then a 50-D latent), its FLOPs "
                  "XLA's count of the compiled update.")
flags.DEFINE_integer("conv_eval_images", 20, "--network=conv: test images of the timed "
                     "k=5000 evaluation call.")
flags.DEFINE_bool("smoke", False, "A 784-32-4 VAE at batch 10, 10 steps per call (whatever "
                  "--steps_per_call says), small peak matmuls: checks that the script runs; the "
                  "numbers mean nothing.")
FLAGS = flags.FLAGS


def conv_main():
  """Throughput of a conv VAE (ELBO) on 28x28 images against the peak: its training
  update and its k=5000 evaluation, each with XLA's FLOP count (convolutions, matmuls
  and elementwise work alike)."""
  steps = 10 if FLAGS.smoke else FLAGS.steps_per_call
  config = config_lib.TrainConfig(
      model=config_lib.ModelConfig(
          latent_dim=4 if FLAGS.smoke else 50,
          network=conv.Config(hidden_sizes=(),
                              conv_channels=(4, 8) if FLAGS.smoke else (32, 64))),
      batch_size=10 if FLAGS.smoke else 100, steps_per_call=steps)
  images = jnp.asarray((np.random.default_rng(0).random((500 * config.batch_size, 784)) < 0.13)
                       .astype(np.uint8))
  eval_timer, eval_flops = conv_eval(config, images[:FLAGS.conv_eval_images], k=50 if FLAGS.smoke
                                     else 5000)
  peaks = common.peak_timers(common.SMOKE_PEAK_SIZES) if FLAGS.smoke else common.peak_timers()
  rates = common.rates({"train": common.training_timer(config, images, steps_per_epoch=500),
                        "eval": eval_timer, **peaks}, FLAGS.calls)
  peak, flops = common.peak_gflops(rates), common.xla_update_flops(config)
  with mock.patch.object(conv_nets, "strided_conv3x3", common.LAX_CONVS[False]), \
       mock.patch.object(conv_nets, "transposed_conv3x3", common.LAX_CONVS[True]):
    conv_flops = common.xla_update_flops(config)
  print(f"backend {jax.default_backend()}, conv VAE {config.model.network.conv_channels}, "
        f"latent {config.model.latent_dim}, batch {config.batch_size}: "
        f"{flops / 1e6:.0f} MFLOP per update as run (patch products), {conv_flops / 1e6:.0f} "
        f"with lax's convolutions; evaluation {eval_flops / 1e9:.3g} GFLOP per image")
  print(json.dumps({
      "network": "conv", "steps_per_s": common.significant(rates["train"]),
      "xla_mflops_per_step": common.significant(flops / 1e6),
      "gflops": common.significant(rates["train"] * flops / 1e9), "peak_gflops": round(peak, 1),
      "fraction_of_peak": common.significant(rates["train"] * flops / 1e9 / peak),
      "conv_mflops_per_step": common.significant(conv_flops / 1e6),
      "conv_fraction_of_peak": common.significant(rates["train"] * conv_flops / 1e9 / peak),
      "eval_images_per_s": common.significant(rates["eval"]),
      "eval_gflops_per_image": common.significant(eval_flops / 1e9),
      "eval_fraction_of_peak": common.significant(rates["eval"] * eval_flops / 1e9 / peak),
      "backend": jax.default_backend(), "smoke": FLAGS.smoke}))


def conv_eval(config, images, k):
  """A timer of importance sampling with k samples of `images` (work in images), as
  evaluation runs it (its chunk of samples), and the decoder's FLOPs per image."""
  model, x = build(config.model), images.astype(jnp.float32)
  params = model.init(jax.random.key(0))
  chunk = importance_sampling.chunk_size(k, x.shape[0], model)
  log_px = lambda p, key: importance_sampling.importance_sampled_log_likelihood(
      p, key, x, model=model, k=k, chunk=chunk)[0]
  run = lambda state: (state[0], log_px(state[0], jax.random.key(3)))  # waits on log p(x)
  # XLA counts a scan's body once, so the FLOPs are those of the decoder's likelihood of
  # k samples of one image in one program (the encoder and the proposal, once per image,
  # add under 1%).
  z = jnp.zeros((1, k, config.model.latent_dim), jnp.float32)
  flops = common.xla_flops(model.log_likelihood_of_samples, params, z, x[:1])
  return common.Timer(run, (params, None), x.shape[0]), flops


def main(argv):
  del argv
  jax.config.update("jax_default_matmul_precision", "highest")
  if FLAGS.network == "conv":
    return conv_main()
  shapes = common.SMOKE if FLAGS.smoke else common.VAE
  steps, ceiling_steps = (10, 10) if FLAGS.smoke else (FLAGS.steps_per_call, 200)
  config = config_lib.TrainConfig(
      model=config_lib.ModelConfig(latent_dim=shapes.latent_dim,
                                   network=mlp.Config(hidden_sizes=shapes.hidden_sizes)),
      batch_size=shapes.batch, steps_per_call=steps)
  images = jnp.asarray((np.random.default_rng(0).random((500 * shapes.batch, 784)) < 0.13)
                       .astype(np.uint8))
  encoder, decoder, batch = shapes
  peaks = common.peak_timers(common.SMOKE_PEAK_SIZES) if FLAGS.smoke else common.peak_timers()
  rates = common.rates({
      "train": common.training_timer(config, images, steps_per_epoch=500),
      "handwritten": common.handwritten_vae_timer(shapes, images, steps, steps_per_epoch=500),
      "matmul_ceiling": common.matmul_ceiling_timer(encoder, decoder, batch, steps=ceiling_steps),
      "adam_ceiling": common.matmul_ceiling_timer(encoder, decoder, batch,
                                                  steps=ceiling_steps, adam=True),
      **peaks}, FLAGS.calls)
  peak = common.peak_gflops(rates)
  steps_per_s, ceiling, adam_ceiling = (
      rates[name] for name in ("train", "matmul_ceiling", "adam_ceiling"))
  # Encoder 784-500-500-(50 means, 50 log-variances); the decoder's input gradient
  # (with respect to z) is needed for the reparameterized encoder gradient.
  flops = (common.mlp_train_flops(encoder, batch)
           + common.mlp_train_flops(decoder, batch, input_gradient=True))
  gflops = steps_per_s * flops / 1e9
  print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"{flops / 1e6:.0f} MFLOP per step")
  print(json.dumps({"steps_per_s": round(steps_per_s, 1), "gflops": round(gflops, 1),
                    "peak_gflops": round(peak, 1), "fraction_of_peak": round(gflops / peak, 3),
                    "matmul_ceiling_steps_per_s": round(ceiling, 1),
                    "matmul_ceiling_fraction": round(ceiling * flops / 1e9 / peak, 3),
                    "adam_ceiling_steps_per_s": round(adam_ceiling, 1),
                    "adam_ceiling_fraction": round(adam_ceiling * flops / 1e9 / peak, 3),
                    "handwritten_steps_per_s": round(rates["handwritten"], 1),
                    "ratio_to_handwritten": round(steps_per_s / rates["handwritten"], 3),
                    "backend": jax.default_backend(), "smoke": FLAGS.smoke}))


if __name__ == "__main__":
  app.run(main)
