r"""The 2-D MNIST model, figure 6: reconstructions of test images, one row per digit.

    python -m experiments.reconstructions_by_digit --workdir=/tmp/vbayes/mnist_2d --manual_dir=../shared/data

The first --per_digit test images of each digit 0-9 (binarized MNIST test split)
and E[x | z] at their encoder means. Shared 2-D VAE of
experiments/mnist_2d_model.py. Writes workdir/figures/reconstructions_by_digit.png.
"""

import numpy as np
from absl import flags

from experiments import common, mnist_2d_model
from vbayes import latent
from vbayes.plots import images as image_plots

flags.DEFINE_integer("per_digit", 10, "Test images per digit.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  config, params, data, figures, _ = mnist_2d_model.load_model()
  rows = []
  for digit in range(10):
    where = np.flatnonzero(data.test_labels == digit)[:FLAGS.per_digit]
    if len(where) < FLAGS.per_digit:
      raise ValueError(f"the test split has {len(where)} images of digit {digit}, "
                       f"fewer than --per_digit={FLAGS.per_digit}")
    rows.append(where)
  x = np.asarray(data.test[np.concatenate(rows)], np.float32)
  recon = np.asarray(latent.reconstructions(params, x, model=config.model))
  shape = (10, FLAGS.per_digit, -1)
  path = figures / "reconstructions_by_digit.png"
  image_plots.save_reconstructions_by_digit(x.reshape(shape), recon.reshape(shape),
                                             data.image_shape, path)
  print(f"wrote {path}")


if __name__ == "__main__":
  common.run(main)
