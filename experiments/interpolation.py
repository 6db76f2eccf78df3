r"""The 2-D MNIST model, figure 3: decoding along the line between two test images'
posterior means, for the digit pairs 1->2, 3->8 and 4->5.

    python -m experiments.interpolation --workdir=/tmp/vbayes/mnist_2d --manual_dir=../shared/data

For each pair the first test image of each digit (binarized MNIST test split) is
encoded; E[x | z_t] is shown for z_t = (1 - t) mu(a) + t mu(b) at --steps values
of t from 0 to 1, between the two test images. Shared 2-D VAE of
experiments/mnist_2d_model.py. Writes workdir/figures/interpolation.png.
"""

import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common, mnist_2d_model
from vbayes import latent
from vbayes.plots import images as image_plots

flags.DEFINE_list("pairs", ["1-2", "3-8", "4-5"], "Digit pairs a-b to interpolate between.")
flags.DEFINE_integer("steps", 12, "Points along each line, ends included.")
FLAGS = flags.FLAGS


def parse_pairs(pairs) -> list[tuple[int, int]]:
  out = []
  for pair in pairs:
    try:
      a, b = (int(d) for d in pair.split("-"))
    except ValueError as e:
      raise ValueError(f"--pairs takes digit pairs like 1-2, got {pair!r}") from e
    out.append((a, b))
  return out


def main(argv):
  del argv
  pairs = parse_pairs(FLAGS.pairs)
  if FLAGS.steps < 2:
    raise ValueError(f"steps must be at least 2, got {FLAGS.steps}")
  config, params, data, figures, _ = mnist_2d_model.load_model()
  x = np.asarray(data.test, np.float32)
  rows = []
  for a, b in pairs:
    i, j = mnist_2d_model.first_of_each(data.test_labels, (a, b))
    line = latent.interpolate(params, jnp.asarray(x[i]), jnp.asarray(x[j]), model=config.model,
                              steps=FLAGS.steps)
    rows.append((f"{a} → {b}", x[i], np.asarray(line), x[j]))
  path = figures / "interpolation.png"
  image_plots.save_interpolations(rows, data.image_shape, path)
  print(f"wrote {path}")


if __name__ == "__main__":
  common.run(main)
