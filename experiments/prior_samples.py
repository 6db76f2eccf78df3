r"""The 2-D MNIST model, figure 1: samples from the prior, decoded.

    python -m experiments.prior_samples --workdir=/tmp/vbayes/mnist_2d --manual_dir=../shared/data

z ~ N(0, I) for a 10x10 grid of draws; left E[x | z] (Bernoulli means), right one
binary image x ~ p(x | z) for each of the same z. The model is the shared 2-D VAE
of experiments/mnist_2d_model.py (trained on the first run: about 8 minutes on a
2-core CPU, then seconds). Writes workdir/figures/prior_samples.png.
"""

import numpy as np
from absl import flags

from experiments import common, mnist_2d_model
from vbayes import latent
from vbayes.plots import images as image_plots

flags.DEFINE_integer("rows", 10, "Rows of samples.")
flags.DEFINE_integer("cols", 10, "Columns of samples.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  if FLAGS.rows <= 0 or FLAGS.cols <= 0:
    raise ValueError(f"rows and cols must be positive, got {FLAGS.rows} and {FLAGS.cols}")
  config, params, data, figures, key = mnist_2d_model.load_model()
  _, means, samples = latent.prior_samples(params, key, model=config.model,
                                           num=FLAGS.rows * FLAGS.cols)
  path = figures / "prior_samples.png"
  image_plots.save_prior_samples(np.asarray(means), np.asarray(samples), data.image_shape,
                                  FLAGS.rows, FLAGS.cols, path, config.model.likelihood.pixels)
  print(f"wrote {path}")


if __name__ == "__main__":
  common.run(main)
