"""Figures written by the experiments. Each takes numpy arrays and a path, writes a PNG."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def tile(images_NxD: np.ndarray, image_shape: tuple[int, int], rows: int, cols: int) -> np.ndarray:
  """Images laid out row-major into one [rows * h, cols * w] array."""
  h, w = image_shape
  grid = np.asarray(images_NxD).reshape(rows, cols, h, w)
  return grid.transpose(0, 2, 1, 3).reshape(rows * h, cols * w)


def save_reconstructions(x_NxD, mean_NxD, image_shape, path: str | Path, cols: int = 10):
  """Top row: test images; bottom row: E[x | z] with z the encoder mean."""
  n = min(cols, len(x_NxD))
  both = np.concatenate([x_NxD[:n], mean_NxD[:n]])
  fig, ax = plt.subplots(figsize=(n * 0.9, 2.1))
  ax.imshow(tile(both, image_shape, 2, n), cmap="gray", vmin=0, vmax=1)
  ax.set_yticks([image_shape[0] / 2, 1.5 * image_shape[0]], ["test x", "E[x | mean z]"])
  ax.set_xticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_training_curves(records: list[dict], path: str | Path):
  """Training loss (-ELBO per image, nats) against step, with KL and -log-likelihood parts."""
  train = [r for r in records if "train_loss" in r]
  steps = [r["step"] for r in train]
  fig, ax = plt.subplots(figsize=(6, 4))
  ax.plot(steps, [r["train_loss"] for r in train], label="loss")
  if train and "train_log_likelihood" in train[0]:
    ax.plot(steps, [-r["train_log_likelihood"] for r in train], label="-log p(x|z)")
  if train and "train_kl" in train[0]:
    ax.plot(steps, [r["train_kl"] for r in train], label="KL(q || p)")
  ax.set_xlabel("step")
  ax.set_ylabel("nats per image (training batches)")
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_latent_grid_walk(means_GxD, image_shape, points: int, limit: float, path: str | Path):
  """Decoded means E[x | z] for z on a points x points grid over [-limit, limit]^2.

  Rows go from z2 = +limit (top) to -limit; columns from z1 = -limit to +limit.
  `means_GxD` is in that order.
  """
  half = limit / max(points - 1, 1)  # tiles are centred on their grid points
  fig, ax = plt.subplots(figsize=(8, 8))
  ax.imshow(tile(means_GxD, image_shape, points, points), cmap="gray", vmin=0, vmax=1,
            extent=(-limit - half, limit + half, -limit - half, limit + half))
  ax.set_xlabel("$z_1$")
  ax.set_ylabel("$z_2$")
  ax.set_title(f"E[x | z] on a {points}x{points} grid of the latent plane")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def latent_walk_points(points: int, limit: float) -> np.ndarray:
  """[points^2, 2], row-major from the top-left (z1 = -limit, z2 = +limit)."""
  axis = np.linspace(-limit, limit, points)
  z1, z2 = np.meshgrid(axis, axis[::-1], indexing="xy")
  return np.stack([z1.ravel(), z2.ravel()], axis=-1).astype(np.float32)


def save_grid_walks(walks: dict, image_shape, points: int, limit: float, path: str | Path):
  """Latent grid walks of several models side by side (one panel each, same grid)."""
  half = limit / max(points - 1, 1)
  fig, axes = plt.subplots(1, len(walks), figsize=(5 * len(walks), 5.4))
  for ax, (name, means) in zip(np.atleast_1d(axes), walks.items()):
    ax.imshow(tile(means, image_shape, points, points), cmap="gray", vmin=0, vmax=1,
              extent=(-limit - half, limit + half, -limit - half, limit + half))
    ax.set_title(name)
    ax.set_xlabel("$z_1$")
  np.atleast_1d(axes)[0].set_ylabel("$z_2$")
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def save_nll_curves(curves: dict, path: str | Path, ylabel: str):
  """Held-out NLL against training seconds, one line per model."""
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  for name, points in curves.items():
    if points:
      seconds, nll = zip(*points)
      ax.plot(seconds, nll, marker="o", markersize=3, label=name)
  ax.set_xscale("log")
  ax.set_xlabel("training time (s, evaluation excluded)")
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_snr_curves(snr: dict, path: str | Path, title: str, statistic: str = "mean",
                    floor: float | None = None):
  """Gradient SNR against k (log-log), encoder and decoder panels, one line per estimator.

  snr maps (estimator, k) to gradient_snr.summarize's output. Dotted lines of
  slope -1/2 and +1/2 through the first point of each panel show the rates of
  Rainforth et al. (2018); a dashed line marks `floor`, the SNR that the finite
  number of draws reports for a zero-mean gradient (gradient_snr.noise_floor).
  """
  estimators = list(dict.fromkeys(e for e, _ in snr))
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
  for ax, group in zip(axes, ("encoder", "decoder")):
    for estimator in estimators:
      ks = sorted(k for e, k in snr if e == estimator and group in snr[e, k])
      if ks:
        ax.plot(ks, [snr[estimator, k][group][statistic] for k in ks], marker="o",
                label=estimator)
    ks = sorted({k for _, k in snr})
    first = snr[estimators[0], ks[0]].get(group)
    if first is not None:
      for slope in (-0.5, 0.5):
        ax.plot(ks, [first[statistic] * (k / ks[0]) ** slope for k in ks], ls=":",
                color="grey", label=f"∝ k^{slope:+.1f}")
    if floor is not None:
      ax.axhline(floor, ls="--", color="black", linewidth=0.8, label="estimation floor")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("k (importance samples)")
    ax.set_title(f"{group} gradient")
    ax.grid(alpha=0.3, which="both")
  axes[0].set_ylabel(f"{statistic} over parameters of |E g| / sd g")
  axes[1].legend()
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
