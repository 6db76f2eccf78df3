r"""Each convolution of the benchmarked conv VAE, XLA's against vbayes', as a fraction of
the float32 matmul peak measured in the same run.

    python bench/conv_layers.py [--calls=5] [--repeats=20] [--smoke]

The layers of `bench/train_throughput.py --network=conv` (28x28 images, 3x3 kernels of
stride 2, 32 and 64 channels): encoder 28x28x1 -> 14x14x32 -> 7x7x64, decoder
7x7x64 -> 14x14x32 -> 28x28x1 (transposed). Two uses of each:
  train  the gradient of a batch of 100 images' outputs (kernel and input; the first
         layer's input is data, so kernel only): what a training step runs;
  eval   the forward pass of 200 rows, the decoder's layers only: what a k=5000
         evaluation step runs (vbayes' chunk for this decoder, importance_sampling).
"xla" is lax's convolution differentiated by XLA; "vbayes" is conv_nets' (lax's
convolution undifferentiated, image-patch products differentiated). FLOPs are XLA's
count of the "xla" program (the convolution's own work, no zero taps), the same for
both, so the rates compare. Last line: one JSON object.
"""

import json

import jax
import jax.numpy as jnp
from absl import app, flags

import common  # bench/common.py, beside this script
from vbayes.models import conv_nets

flags.DEFINE_integer("calls", 5, "Timed calls of each timer (the best is reported).")
flags.DEFINE_integer("repeats", 20, "Layer calls per timed call (one jit, lax.fori_loop).")
flags.DEFINE_bool("smoke", False, "A batch of 2 and 2 repeats, small peak matmuls: checks "
                  "that the script runs; the numbers mean nothing.")
FLAGS = flags.FLAGS

# name: (input side, input channels, output channels, transposed)
LAYERS = {"encoder_1": (28, 1, 32, False), "encoder_2": (14, 32, 64, False),
          "decoder_1": (7, 64, 32, True), "decoder_2": (14, 32, 1, True)}
CONVS = {"xla": common.LAX_CONVS,
         "vbayes": {False: conv_nets.strided_conv3x3, True: conv_nets.transposed_conv3x3}}


def layer_work(side, c_in, c_out, transposed, batch, use, conv):
  """(function of (x, kernel) -> a scalar that depends on all of the work, x, kernel)."""
  x = jax.random.normal(jax.random.key(0), (batch, side, side, c_in))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, c_in, c_out)) / (3 * c_in**0.5)
  if use == "eval":
    return (lambda x, k: jnp.sum(conv(x, k))), x, kernel
  argnums = (1,) if c_in == 1 else (0, 1)  # no gradient for the data
  out_shape = jax.eval_shape(conv, x, kernel).shape
  cotangent = jax.random.normal(jax.random.key(2), out_shape)
  grad = jax.grad(lambda x, k: jnp.sum(conv(x, k) * cotangent), argnums=argnums)
  return (lambda x, k: sum(jnp.sum(g) for g in grad(x, k))), x, kernel


def timer(work_fn, x, kernel, repeats):
  """`repeats` evaluations of work_fn in one jit, each on a slightly moved input so none
  is hoisted out of the loop; work in calls of the layer."""
  def run(state):
    x, k, total = state
    body = lambda i, t: t + work_fn(x + i.astype(x.dtype) * 1e-6, k)
    return x, k, jax.lax.fori_loop(0, repeats, body, total)
  return common.Timer(jax.jit(run, donate_argnums=0), (x, kernel, jnp.zeros(())), repeats)


def main(argv):
  del argv
  jax.config.update("jax_default_matmul_precision", "highest")
  repeats = 2 if FLAGS.smoke else FLAGS.repeats
  sizes = {"train": 2 if FLAGS.smoke else 100, "eval": 2 if FLAGS.smoke else 200}
  results = {}
  for name, (side, c_in, c_out, transposed) in LAYERS.items():
    for use, batch in sizes.items():
      if use == "eval" and not transposed:
        continue
      timers, flops = {}, None
      for impl, convs in CONVS.items():
        work_fn, x, kernel = layer_work(side, c_in, c_out, transposed, batch, use,
                                        convs[transposed])
        timers[impl] = timer(work_fn, x, kernel, repeats)
        if impl == "xla":
          flops = common.xla_flops(work_fn, x, kernel)
      peaks = common.peak_timers(common.SMOKE_PEAK_SIZES if FLAGS.smoke else (1024,))
      group = common.rates({**timers, **peaks}, FLAGS.calls)
      peak = common.peak_gflops(group)
      row = {"mflops": common.significant(flops / 1e6), "peak_gflops": round(peak, 1)}
      for impl in CONVS:
        gflops = group[impl] * flops / 1e9
        row[f"{impl}_ms"] = common.significant(1e3 / group[impl])
        row[f"{impl}_fraction_of_peak"] = common.significant(gflops / peak)
      row["speedup"] = common.significant(group["vbayes"] / group["xla"])
      results[f"{name}_{use}"] = row
      print(f"{name} {use} (batch {batch}): {row['mflops']} MFLOP, xla {row['xla_ms']} ms "
            f"({row['xla_fraction_of_peak']} of peak), vbayes {row['vbayes_ms']} ms "
            f"({row['vbayes_fraction_of_peak']}), x{row['speedup']}", flush=True)
  print(json.dumps({"layers": results, "backend": jax.default_backend(),
                    "smoke": FLAGS.smoke}))


if __name__ == "__main__":
  app.run(main)
