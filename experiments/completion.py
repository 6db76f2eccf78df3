r"""The 2-D MNIST model, figure 5: completing the bottom half of test images
("Frankenstein") by stochastic VI.

    python -m experiments.completion --workdir=/tmp/vbayes/mnist_2d --manual_dir=../shared/data

For the first test image of each of --digits, q(z) = N(m, diag v) is fitted to
p(z | x_top) (top 14 rows observed) by stochastic VI: a non-amortized per-image
ELBO of the top half, Adam, all images at once under vmap (vbayes.svi), from
--svi_restarts starting points, keeping the fit with the best ELBO. Then
--num_completions draws z ~ q are decoded, and E[x | z] fills the bottom half
under the true top half; the last column averages the bottom-half means. Shared
2-D VAE of experiments/mnist_2d_model.py. Writes workdir/figures/completion.png.
"""

import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common, mnist_2d_model
from vbayes import latent, svi
from vbayes.plots import images as image_plots

flags.DEFINE_list("digits", ["0", "2", "3", "5", "7", "9"], "The first test image of each.")
flags.DEFINE_integer("num_completions", 8, "Samples z ~ q per image.")
flags.DEFINE_integer("svi_steps", 1000, "Adam steps of each stochastic VI fit.")
flags.DEFINE_integer("svi_samples", 16, "Monte Carlo samples per ELBO gradient.")
flags.DEFINE_integer("svi_restarts", 64, "Fits from starting points z ~ p(z); the best ELBO is kept.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  if FLAGS.num_completions <= 0:
    raise ValueError(f"num_completions must be positive, got {FLAGS.num_completions}")
  config, params, data, figures, key = mnist_2d_model.load_model()
  index = mnist_2d_model.first_of_each(data.test_labels, [int(d) for d in FLAGS.digits])
  x = jnp.asarray(data.test[index], jnp.float32)
  out = latent.complete(params, key, x, svi.top_half_mask(data.image_shape), model=config.model,
                        num_completions=FLAGS.num_completions,
                        steps=50 if FLAGS.fast else FLAGS.svi_steps,
                        svi_samples=FLAGS.svi_samples,
                        log=lambda line: print(line, flush=True),
                        restarts=4 if FLAGS.fast else FLAGS.svi_restarts)
  for i, m, v in zip(index, np.asarray(out["q_mean"]), np.asarray(out["q_log_var"])):
    print(f"test image {i}: q mean {np.round(m, 3)}, sd {np.round(np.exp(0.5 * v), 3)}")
  path = figures / "completion.png"
  image_plots.save_completions(np.asarray(x), np.asarray(out["completions"]),
                                np.asarray(out["average"]), data.image_shape, path)
  print(f"wrote {path}")


if __name__ == "__main__":
  common.run(main)
