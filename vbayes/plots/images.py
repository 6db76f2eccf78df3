"""Figures of images: reconstructions, samples, interpolations, completions. Each
takes numpy arrays and a path and writes a PNG."""

from pathlib import Path

import numpy as np

from vbayes.plots import figure
from vbayes.plots.figure import plt

def save_reconstructions(x_NxD, mean_NxD, image_shape, path: str | Path, cols: int = 10):
  """Top row: test images; bottom row: E[x | z] with z the encoder mean."""
  n = min(cols, len(x_NxD))
  both = np.concatenate([x_NxD[:n], mean_NxD[:n]])
  fig, ax = plt.subplots(figsize=(n * 0.9, 2.1))
  ax.imshow(figure.tile(both, image_shape, 2, n), cmap="gray", vmin=0, vmax=1)
  ax.set_yticks([image_shape[0] / 2, 1.5 * image_shape[0]], ["test x", "E[x | mean z]"])
  ax.set_xticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_prior_samples(means_NxD, samples_NxD, image_shape, rows: int, cols: int,
                       path: str | Path, pixels: str = "binary"):
  """Left: E[x | z] for z ~ p(z); right: one x ~ p(x | z) for the same z (`pixels`: the
  likelihood's, "binary" or "grey")."""
  fig, axes = figure.figure("prior_samples", ncols=2)
  figure.show(axes[0], figure.tile(means_NxD, image_shape, rows, cols), "E[x | z],  z ~ p(z)")
  figure.show(axes[1], figure.tile(np.clip(samples_NxD, 0, 1), image_shape, rows, cols),
        f"x ~ p(x | z) ({pixels} pixels), same z")
  fig.tight_layout()
  figure.save(fig, path)


def save_image_grids(grids: dict[str, np.ndarray], image_shape, rows: int, cols: int,
                     path: str | Path):
  """Side-by-side grids of images, one per model (e.g. decoded prior samples)."""
  fig, axes = figure.figure("model_samples", ncols=len(grids), squeeze=False)
  for ax, (title, images) in zip(axes[0], grids.items()):
    figure.show(ax, figure.tile(images, image_shape, rows, cols), title)
  fig.tight_layout()
  figure.save(fig, path)


def save_image_rows(rows: dict[str, np.ndarray], image_shape, path: str | Path):
  """Rows of images with their names (e.g. test images, then each model's reconstructions)."""
  fig, ax = figure.figure("model_reconstructions")
  names = list(rows)
  n = min(len(r) for r in rows.values())
  figure.show(ax, figure.tile(np.concatenate([rows[k][:n] for k in names]), image_shape,
                              len(names), n))
  ax.set_yticks([image_shape[0] * (i + 0.5) for i in range(len(names))], names)
  fig.tight_layout()
  figure.save(fig, path)


def save_interpolations(rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], image_shape,
                        path: str | Path):
  """One row per pair (name, x_a, decoded means along the line [T, D], x_b)."""
  fig, axes = figure.figure("interpolation", nrows=len(rows), squeeze=False)
  for ax, (name, x_a, line_TxD, x_b) in zip(axes[:, 0], rows):
    strip = np.concatenate([x_a[None], np.full_like(x_a[None], 0.5), line_TxD,
                            np.full_like(x_a[None], 0.5), x_b[None]])
    figure.show(ax, figure.tile(strip, image_shape, 1, len(strip)))
    ax.set_ylabel(name, rotation=0, labelpad=25, va="center")
  axes[0, 0].set_title("test image a | E[x | z] along z = (1 - t) mu(a) + t mu(b), t = 0..1 "
                       "| test image b")
  fig.tight_layout()
  figure.save(fig, path)


def save_completions(x_NxD, completions_NxSxD, average_NxD, image_shape, path: str | Path):
  """Rows: test images. Columns: the image, its observed top half, S completions
  (true top half over E[x | z_s] below, z_s ~ q), and their average."""
  n, s, _ = completions_NxSxD.shape
  h, _ = image_shape
  top = np.asarray(x_NxD, np.float32).copy()
  top[:, top.shape[1] // 2:] = 0.5
  rows = np.concatenate([x_NxD[:, None], top[:, None], completions_NxSxD, average_NxD[:, None]],
                        axis=1)
  fig, ax = figure.figure("completion")
  figure.show(ax, figure.tile(rows.reshape(n * (s + 3), -1), image_shape, n, s + 3))
  for r in range(n):
    ax.axhline(r * h + h / 2 - 0.5, color="crimson", linewidth=0.6, alpha=0.7)
  w = image_shape[1]
  ax.set_xticks([w / 2, 1.5 * w, *(w * (j + 2.5) for j in range(s)), w * (s + 2.5)],
                ["test x", "observed", *(f"z{j + 1}" for j in range(s)), "mean"])
  ax.set_title("Completion: q(z) fitted to the top half by stochastic VI, z ~ q, "
               "E[x | z] below the line")
  fig.tight_layout()
  figure.save(fig, path)


def save_reconstructions_by_digit(x_CxNxD, recon_CxNxD, image_shape, path: str | Path):
  """Left: N test images of each digit (one row per class); right: E[x | z = E_q[z|x]]."""
  c, n, _ = x_CxNxD.shape
  fig, axes = figure.figure("reconstructions_by_digit", ncols=2)
  for ax, images, title in ((axes[0], x_CxNxD, "test images"),
                            (axes[1], recon_CxNxD, "reconstructions E[x | z = E_q[z | x]]")):
    figure.show(ax, figure.tile(images.reshape(c * n, -1), image_shape, c, n), title)
    ax.set_yticks([image_shape[0] * (i + 0.5) for i in range(c)], [str(i) for i in range(c)])
  axes[0].set_ylabel("digit")
  fig.tight_layout()
  figure.save(fig, path)
