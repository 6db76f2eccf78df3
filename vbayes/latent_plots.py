"""Figures of a model's latent space (the seed 001 figures). Each takes numpy
arrays and a path and writes a PNG of the fixed pixel size in `PIXELS`."""

from pathlib import Path

import numpy as np

from vbayes.plots import plt, tile

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


def _figure(name: str, **kwargs):
  w, h = PIXELS[name]
  return plt.subplots(figsize=(w / DPI, h / DPI), dpi=DPI, **kwargs)


def _save(fig, path):
  fig.savefig(path, dpi=DPI)
  plt.close(fig)


def _show(ax, image, title=None):
  ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])
  if title:
    ax.set_title(title)


def save_prior_samples(means_NxD, samples_NxD, image_shape, rows: int, cols: int,
                       path: str | Path, likelihood: str = "bernoulli"):
  """Left: E[x | z] for z ~ p(z); right: one x ~ p(x | z) for the same z."""
  fig, axes = _figure("prior_samples", ncols=2)
  _show(axes[0], tile(means_NxD, image_shape, rows, cols), "E[x | z],  z ~ N(0, I)")
  kind = "binary" if likelihood == "bernoulli" else "Gaussian"
  _show(axes[1], tile(np.clip(samples_NxD, 0, 1), image_shape, rows, cols),
        f"x ~ p(x | z) ({kind}), same z")
  fig.tight_layout()
  _save(fig, path)


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
  fig, ax = _figure("latent_posterior")
  _digit_scatter(ax, points_Nx2, labels_N, title, axis_names)
  ax.legend(title="digit", markerscale=5, loc="center left", bbox_to_anchor=(1.0, 0.5))
  fig.tight_layout()
  _save(fig, path)


def save_latent_scatters(panels: dict[str, tuple], labels_N, path: str | Path):
  """One digit-coloured scatter per model: panels maps a title to (points [N, 2], axis names)."""
  fig, axes = _figure("model_latents", ncols=len(panels), squeeze=False)
  for ax, (title, (points, axis_names)) in zip(axes[0], panels.items()):
    _digit_scatter(ax, points, labels_N, title, axis_names)
  axes[0, -1].legend(title="digit", markerscale=5, loc="center left", bbox_to_anchor=(1.0, 0.5))
  fig.tight_layout()
  _save(fig, path)


def save_image_grids(grids: dict[str, np.ndarray], image_shape, rows: int, cols: int,
                     path: str | Path):
  """Side-by-side grids of images, one per model (e.g. decoded prior samples)."""
  fig, axes = _figure("model_samples", ncols=len(grids), squeeze=False)
  for ax, (title, images) in zip(axes[0], grids.items()):
    _show(ax, tile(images, image_shape, rows, cols), title)
  fig.tight_layout()
  _save(fig, path)


def save_image_rows(rows: dict[str, np.ndarray], image_shape, path: str | Path):
  """Rows of images with their names (e.g. test images, then each model's reconstructions)."""
  fig, ax = _figure("model_reconstructions")
  names = list(rows)
  n = min(len(r) for r in rows.values())
  _show(ax, tile(np.concatenate([rows[k][:n] for k in names]), image_shape, len(names), n))
  ax.set_yticks([image_shape[0] * (i + 0.5) for i in range(len(names))], names)
  fig.tight_layout()
  _save(fig, path)


def save_interpolations(rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], image_shape,
                        path: str | Path):
  """One row per pair (name, x_a, decoded means along the line [T, D], x_b)."""
  fig, axes = _figure("interpolation", nrows=len(rows), squeeze=False)
  for ax, (name, x_a, line_TxD, x_b) in zip(axes[:, 0], rows):
    strip = np.concatenate([x_a[None], np.full_like(x_a[None], 0.5), line_TxD,
                            np.full_like(x_a[None], 0.5), x_b[None]])
    _show(ax, tile(strip, image_shape, 1, len(strip)))
    ax.set_ylabel(name, rotation=0, labelpad=25, va="center")
  axes[0, 0].set_title("test image a | E[x | z] along z = (1 - t) mu(a) + t mu(b), t = 0..1 "
                       "| test image b")
  fig.tight_layout()
  _save(fig, path)


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
  fig, axes = _figure("true_vs_variational", ncols=len(panels), squeeze=False)
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
    _show(inset, observed)
    ax.set_title(panel["title"], fontsize=10)
    ax.set_xlabel("$z_1$")
    ax.set_aspect("equal")
  axes[0, 0].set_ylabel("$z_2$")
  fig.suptitle("p(z | top half) on a grid (blue, 50/90/99% mass)  vs  q(z) by stochastic VI "
               "(red, same masses); KLs in nats on the grid", fontsize=11)
  fig.tight_layout()
  _save(fig, path)


def save_completions(x_NxD, completions_NxSxD, average_NxD, image_shape, path: str | Path):
  """Rows: test images. Columns: the image, its observed top half, S completions
  (true top half over E[x | z_s] below, z_s ~ q), and their average."""
  n, s, _ = completions_NxSxD.shape
  h, _ = image_shape
  top = np.asarray(x_NxD, np.float32).copy()
  top[:, top.shape[1] // 2:] = 0.5
  rows = np.concatenate([x_NxD[:, None], top[:, None], completions_NxSxD, average_NxD[:, None]],
                        axis=1)
  fig, ax = _figure("completion")
  _show(ax, tile(rows.reshape(n * (s + 3), -1), image_shape, n, s + 3))
  for r in range(n):
    ax.axhline(r * h + h / 2 - 0.5, color="crimson", linewidth=0.6, alpha=0.7)
  w = image_shape[1]
  ax.set_xticks([w / 2, 1.5 * w, *(w * (j + 2.5) for j in range(s)), w * (s + 2.5)],
                ["test x", "observed", *(f"z{j + 1}" for j in range(s)), "mean"])
  ax.set_title("Completion: q(z) fitted to the top half by stochastic VI, z ~ q, "
               "E[x | z] below the line")
  fig.tight_layout()
  _save(fig, path)


def save_reconstructions_by_digit(x_CxNxD, recon_CxNxD, image_shape, path: str | Path):
  """Left: N test images of each digit (one row per class); right: E[x | z = E_q[z|x]]."""
  c, n, _ = x_CxNxD.shape
  fig, axes = _figure("reconstructions_by_digit", ncols=2)
  for ax, images, title in ((axes[0], x_CxNxD, "test images"),
                            (axes[1], recon_CxNxD, "reconstructions E[x | z = E_q[z | x]]")):
    _show(ax, tile(images.reshape(c * n, -1), image_shape, c, n), title)
    ax.set_yticks([image_shape[0] * (i + 0.5) for i in range(c)], [str(i) for i in range(c)])
  axes[0].set_ylabel("digit")
  fig.tight_layout()
  _save(fig, path)


def save_posterior_samples(panels: dict[str, np.ndarray], images_IxD, image_shape,
                           path: str | Path, limit: float = 3.5):
  """One panel per model: samples z ~ q(z | x_i) [I, N, 2] coloured by image i, with
  the images as a legend; the prior's 1- and 2-sd circles for scale."""
  fig, axes = _figure("four_frames_latents", ncols=len(panels), squeeze=False)
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
  _save(fig, path)


def save_adversary_densities(log_density_IxP_P, samples_IxNx2, images_IxD, image_shape,
                             limit: float, path: str | Path):
  """One panel per image x_i: the adversary's density estimate exp f_psi(x_i, z) on
  a P x P grid over [-limit, limit]^2 (log values [I, P, P], rows z2; shaded
  relative to its maximum), under samples z ~ q(z | x_i) of the implicit encoder."""
  count = len(samples_IxNx2)
  fig, axes = _figure("adversary_densities", ncols=count, squeeze=False)
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
  _save(fig, path)
