"""Figures of the latent space: grid walks, scatters of posterior means, posterior
samples and densities, true against variational posteriors. Each takes numpy arrays
and a path and writes a PNG."""

from pathlib import Path

import numpy as np

from vbayes.plots import figure
from vbayes.plots.figure import plt

def latent_walk_points(points: int, limit: float) -> np.ndarray:
  """[points^2, 2], row-major from the top-left (z1 = -limit, z2 = +limit)."""
  axis = np.linspace(-limit, limit, points)
  z1, z2 = np.meshgrid(axis, axis[::-1], indexing="xy")
  return np.stack([z1.ravel(), z2.ravel()], axis=-1).astype(np.float32)


def save_latent_grid_walk(means_GxD, image_shape, points: int, limit: float, path: str | Path):
  """Decoded means E[x | z] for z on a points x points grid over [-limit, limit]^2.

  Rows go from z2 = +limit (top) to -limit; columns from z1 = -limit to +limit.
  `means_GxD` is in that order.
  """
  half = limit / max(points - 1, 1)  # tiles are centred on their grid points
  fig, ax = plt.subplots(figsize=(8, 8))
  ax.imshow(figure.tile(means_GxD, image_shape, points, points), cmap="gray", vmin=0, vmax=1,
            extent=(-limit - half, limit + half, -limit - half, limit + half))
  ax.set_xlabel("$z_1$")
  ax.set_ylabel("$z_2$")
  ax.set_title(f"E[x | z] on a {points}x{points} grid of the latent plane")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_grid_walks(walks: dict, image_shape, points: int, limit: float, path: str | Path):
  """Latent grid walks of several models side by side (one panel each, same grid)."""
  half = limit / max(points - 1, 1)
  fig, axes = plt.subplots(1, len(walks), figsize=(5 * len(walks), 5.4))
  for ax, (name, means) in zip(np.atleast_1d(axes), walks.items()):
    ax.imshow(figure.tile(means, image_shape, points, points), cmap="gray", vmin=0, vmax=1,
              extent=(-limit - half, limit + half, -limit - half, limit + half))
    ax.set_title(name)
    ax.set_xlabel("$z_1$")
  np.atleast_1d(axes)[0].set_ylabel("$z_2$")
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def _digit_scatter(ax, points_Nx2, labels_N, title, axis_names):
  colours = plt.get_cmap("tab10")
  for digit in range(10):
    sel = labels_N == digit
    ax.scatter(points_Nx2[sel, 0], points_Nx2[sel, 1], s=2, alpha=0.6, color=colours(digit),
               label=str(digit), rasterized=True)
  ax.set_xlabel(axis_names[0])
  ax.set_ylabel(axis_names[1])
  ax.set_title(title)
  ax.set_aspect("equal", adjustable="datalim")


def save_latent_scatter(points_Nx2, labels_N, path: str | Path, title: str,
                        axis_names=("$z_1$", "$z_2$")):
  """Points coloured by digit with tab10 (ten distinct qualitative colours) and a legend."""
  fig, ax = figure.figure("latent_posterior")
  _digit_scatter(ax, points_Nx2, labels_N, title, axis_names)
  ax.legend(title="digit", markerscale=5, loc="center left", bbox_to_anchor=(1.0, 0.5))
  fig.tight_layout()
  figure.save(fig, path)


def save_latent_scatters(panels: dict[str, tuple], labels_N, path: str | Path):
  """One digit-coloured scatter per model: panels maps a title to (points [N, 2], axis names)."""
  fig, axes = figure.figure("model_latents", ncols=len(panels), squeeze=False)
  for ax, (title, (points, axis_names)) in zip(axes[0], panels.items()):
    _digit_scatter(ax, points, labels_N, title, axis_names)
  axes[0, -1].legend(title="digit", markerscale=5, loc="center left", bbox_to_anchor=(1.0, 0.5))
  fig.tight_layout()
  figure.save(fig, path)


def _hpd_levels(log_mass_G: np.ndarray, masses=(0.99, 0.9, 0.5)) -> list[float]:
  """Mass thresholds whose superlevel sets hold the given fractions of the mass, increasing."""
  p = np.sort(np.exp(log_mass_G.ravel()))[::-1]
  cum = np.cumsum(p)
  return sorted({float(p[min(np.searchsorted(cum, m), len(p) - 1)]) for m in masses})

P_COLOURS = ("#c6dbef", "#6baed6", "#2171b5")  # 99%, 90%, 50% mass regions of p


def save_true_vs_variational(panels: list[dict], image_shape, path: str | Path):
  """Each panel: isocontours (50/90/99% mass) of the exact p(z | x_top) (filled, blue)
  and of q(z) (red lines) on the same axes, the KLs, and the observed top half as an inset.

  panel keys: those of `latent.posterior_vs_gaussian` plus "image" (x [D]) and "title".
  """
  fig, axes = figure.figure("true_vs_variational", ncols=len(panels), squeeze=False)
  for ax, panel in zip(axes[0], panels):
    z1 = panel["axis"] + panel["center"][0]
    z2 = panel["axis"] + panel["center"][1]
    p_levels = _hpd_levels(panel["log_p"])
    ax.contourf(z1, z2, np.exp(panel["log_p"]), levels=[*p_levels, np.inf],
                colors=P_COLOURS[-len(p_levels):])
    ax.contour(z1, z2, np.exp(panel["log_q"]), levels=_hpd_levels(panel["log_q"]),
               colors="crimson", linewidths=1.2)
    ax.text(0.03, 0.03, f"KL(q‖p) = {panel['kl_qp']:.3f}\nKL(p‖q) = {panel['kl_pq']:.3f}",
            transform=ax.transAxes, fontsize=9, va="bottom",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    h, w = image_shape
    observed = np.asarray(panel["image"], np.float32).reshape(h, w).copy()
    observed[h // 2:] = 0.5
    inset = ax.inset_axes([0.72, 0.72, 0.26, 0.26])
    figure.show(inset, observed)
    ax.set_title(panel["title"], fontsize=10)
    ax.set_xlabel("$z_1$")
    ax.set_aspect("equal")
  axes[0, 0].set_ylabel("$z_2$")
  fig.suptitle("p(z | top half) on a grid (blue, 50/90/99% mass)  vs  q(z) by stochastic VI "
               "(red, same masses); KLs in nats on the grid", fontsize=11)
  fig.tight_layout()
  figure.save(fig, path)


def save_posterior_samples(panels: dict[str, np.ndarray], images_IxD, image_shape,
                           path: str | Path, limit: float = 3.5):
  """One panel per model: samples z ~ q(z | x_i) [I, N, 2] coloured by image i, with
  the images as a legend; the prior's 1- and 2-sd circles for scale."""
  fig, axes = figure.figure("four_frames_latents", ncols=len(panels), squeeze=False)
  colours = plt.get_cmap("tab10")
  circle = np.linspace(0, 2 * np.pi, 200)
  for ax, (name, z_IxNx2) in zip(axes[0], panels.items()):
    for i, z in enumerate(z_IxNx2):
      pixels = "".join(str(int(v)) for v in np.asarray(images_IxD[i]).ravel())
      ax.scatter(z[:, 0], z[:, 1], s=3, alpha=0.5, color=colours(i), label=f"x = {pixels}",
                 rasterized=True)
    for r in (1, 2):
      ax.plot(r * np.cos(circle), r * np.sin(circle), color="grey", linewidth=0.6, ls="--")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_title(name)
    ax.set_xlabel("$z_1$")
  axes[0, 0].set_ylabel("$z_2$")
  axes[0, -1].legend(title=f"image ({image_shape[0]}x{image_shape[1]} pixels, row-major)",
                     markerscale=4, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
  fig.tight_layout()
  figure.save(fig, path)


def save_adversary_densities(log_density_IxP_P, samples_IxNx2, images_IxD, image_shape,
                             limit: float, path: str | Path):
  """One panel per image x_i: the adversary's density estimate exp f_psi(x_i, z) on
  a P x P grid over [-limit, limit]^2 (log values [I, P, P], rows z2; shaded
  relative to its maximum), under samples z ~ q(z | x_i) of the implicit encoder."""
  count = len(samples_IxNx2)
  fig, axes = figure.figure("adversary_densities", ncols=count, squeeze=False)
  colours = plt.get_cmap("tab10")
  for i, ax in enumerate(axes[0]):
    log_d = np.asarray(log_density_IxP_P[i])
    ax.imshow(np.exp(log_d - log_d.max()), origin="lower", cmap="Greys",
              extent=(-limit, limit, -limit, limit))
    z = np.asarray(samples_IxNx2[i])
    ax.scatter(z[:, 0], z[:, 1], s=2, alpha=0.3, color=colours(i), rasterized=True)
    pixels = "".join(str(int(v)) for v in np.asarray(images_IxD[i]).ravel())
    ax.set_title(f"x = {pixels}", fontsize=10)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
  axes[0, 0].set_ylabel("$z_2$")
  fig.suptitle("adversary's estimate of q(z|x) = exp f(x, z) (grey) and samples of q (dots)",
               fontsize=11)
  fig.tight_layout()
  figure.save(fig, path)
