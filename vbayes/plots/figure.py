"""What every figure shares: matplotlib without a display, fixed pixel sizes, image tiles."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

DPI = 100

PIXELS = {  # (width, height) of each figure's PNG
    "prior_samples": (1000, 540),
    "latent_posterior": (760, 680),
    "interpolation": (1200, 420),
    "true_vs_variational": (1600, 460),
    "completion": (1100, 760),
    "reconstructions_by_digit": (1200, 700),
    "four_frames_latents": (1500, 540),
    "model_latents": (1400, 640),
    "model_samples": (1200, 640),
    "model_reconstructions": (1200, 420),
    "adversary_densities": (1500, 420),
}


def tile(images_NxD: np.ndarray, image_shape: tuple[int, int], rows: int, cols: int) -> np.ndarray:
  """Images laid out row-major into one [rows * h, cols * w] array."""
  h, w = image_shape
  grid = np.asarray(images_NxD).reshape(rows, cols, h, w)
  return grid.transpose(0, 2, 1, 3).reshape(rows * h, cols * w)


def figure(name: str, **kwargs):
  w, h = PIXELS[name]
  return plt.subplots(figsize=(w / DPI, h / DPI), dpi=DPI, **kwargs)


def save(fig, path):
  fig.savefig(path, dpi=DPI)
  plt.close(fig)


def show(ax, image, title=None):
  ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])
  if title:
    ax.set_title(title)
