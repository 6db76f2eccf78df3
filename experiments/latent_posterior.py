r"""The 2-D MNIST model, figure 2: the encoder means of the whole official test split,
coloured by digit.

    python -m experiments.latent_posterior --workdir=/tmp/vbayes/mnist_2d --manual_dir=../shared/data

Each of the 10000 binarized MNIST test images (Larochelle's test split, never
seen in training) is placed at E_q[z | x] and coloured by its digit with the
ten-colour qualitative map tab10. tfds binarized_mnist has no labels; they are
recovered from tfds mnist's test split (vbayes.data.binarized_mnist_test_labels).
Shared 2-D VAE of experiments/mnist_2d_model.py. Writes
workdir/figures/latent_posterior.png.
"""

import numpy as np

from experiments import common, mnist_2d_model
from vbayes import latent
from vbayes.plots import latents as latent_plots


def main(argv):
  del argv
  config, params, data, figures, _ = mnist_2d_model.load_model()
  means = latent.encoder_means(params, np.asarray(data.test, np.float32), model=config.model,
                               batch_size=min(1000, len(data.test)))
  path = figures / "latent_posterior.png"
  latent_plots.save_latent_scatter(
      np.asarray(means), data.test_labels, path,
      f"E_q[z | x] of the {len(data.test)} binarized MNIST test images")
  print(f"wrote {path}")


if __name__ == "__main__":
  common.run(main)
