r"""AIS throughput: leapfrog steps per second of vbayes' annealing chains on the
784-500-500-50 VAE, as a fraction of the float32 matmul peak and of the ceiling of the
same matmuls with nothing else, measured in the same run.

    python bench/ais_throughput.py [--images=50] [--chains=16] [--calls=3] [--smoke]

Timed: vbayes.evaluation.ais.anneal on images x chains rows (forward AIS from a
Gaussian q0, --ais_steps distributions, HMC with 10 leapfrog steps each). Every leapfrog
step is one gradient of log p(x, z) in z: the decoder's forward pass and its input
gradient on all rows, 4 * rows * (its multiply-adds) FLOPs (the prior's and q0's terms
are elementwise). The ceiling (`gradient_ceiling_timer`) takes the same input
gradients of a bias-free ReLU MLP of the decoder's sizes in a loop, with no
likelihood, HMC or bookkeeping.
Last line: one JSON object with leapfrog_steps_per_s, gflops, fraction_of_peak,
ceiling_fraction (vbayes' rate over the ceiling's) and peak_gflops.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import common  # bench/common.py, beside this script
from vbayes import config as config_lib, distributions
from vbayes.evaluation import ais
from vbayes.models import build
from vbayes.models.networks import mlp

flags.DEFINE_integer("images", 50, "Images per call.")
flags.DEFINE_integer("chains", 16, "AIS chains per image.")
flags.DEFINE_integer("ais_steps", 20, "Annealing distributions per timed call.")
flags.DEFINE_integer("calls", 3, "Timed calls of each timer (the best is reported).")
flags.DEFINE_bool("smoke", False, "A 784-32-4 decoder, 2 images x 2 chains, small peak "
                  "matmuls: checks that the script runs; the numbers mean nothing.")
FLAGS = flags.FLAGS
LEAPFROG = 10


def gradient_ceiling_timer(sizes: tuple[int, ...], rows: int, steps: int) -> common.Timer:
  """`steps` input gradients of sum(c * relu_mlp(z)) in a fori_loop, each step's z
  moved by its gradient (so none can be hoisted); work in steps."""
  keys = jax.random.split(jax.random.key(0), 3)
  ws = common._random_weights(keys[0], sizes)  # pylint: disable=protected-access
  c = jax.random.normal(keys[2], (rows, sizes[-1]))
  grad = jax.grad(lambda z: jnp.vdot(common.relu_mlp(ws, z), c))

  def run(z):
    return jax.lax.fori_loop(0, steps, lambda _, z: z + 1e-6 * grad(z), z)

  return common.Timer(jax.jit(run, donate_argnums=0),
                      jax.random.normal(keys[1], (rows, sizes[0])), steps)


def main(argv):
  del argv
  jax.config.update("jax_default_matmul_precision", "highest")
  shapes = common.SMOKE if FLAGS.smoke else common.VAE
  images, chains = (2, 2) if FLAGS.smoke else (FLAGS.images, FLAGS.chains)
  num_steps = 2 if FLAGS.smoke else FLAGS.ais_steps
  model = config_lib.ModelConfig(latent_dim=shapes.latent_dim,
                                 network=mlp.Config(hidden_sizes=shapes.hidden_sizes))
  params = build(model).init(jax.random.key(0))
  x = jnp.asarray((np.random.default_rng(0).random((images, 784)) < 0.13), jnp.float32)
  latent = shapes.latent_dim
  q0 = distributions.DiagNormal(jnp.zeros((images, latent)), jnp.zeros((images, latent)))
  z0 = q0.sample(jax.random.key(1), chains)
  schedule = ais.betas(num_steps + 1, "linear")
  settings = ais.HMCSettings(leapfrog_steps=LEAPFROG)
  anneal = jax.jit(lambda z: ais.anneal(params, jax.random.key(2), x, z, q0, schedule,
                                        model=model, settings=settings)[2])
  leapfrogs = num_steps * LEAPFROG  # num_steps transitions (the last update has none)
  rows = images * chains
  rates = common.rates(
      {"ais": common.Timer(anneal, z0, leapfrogs),
       "ceiling": gradient_ceiling_timer(shapes.decoder, rows, leapfrogs),
       **(common.peak_timers(common.SMOKE_PEAK_SIZES) if FLAGS.smoke
          else common.peak_timers())}, FLAGS.calls)
  peak = common.peak_gflops(rates)
  macs = sum(m * n for m, n in zip(shapes.decoder[:-1], shapes.decoder[1:]))
  flops = 4.0 * rows * macs
  print(json.dumps({
      "backend": jax.default_backend(), "smoke": FLAGS.smoke, "images": images,
      "chains": chains, "leapfrog_steps_per_s": round(rates["ais"], 1),
      "gflops": round(rates["ais"] * flops / 1e9, 1),
      "fraction_of_peak": round(rates["ais"] * flops / 1e9 / peak, 3),
      "ceiling_fraction": round(rates["ais"] / rates["ceiling"], 3),
      "peak_gflops": round(peak, 1)}))


if __name__ == "__main__":
  app.run(main)
