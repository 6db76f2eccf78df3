"""Figures of numbers over training: losses, held-out NLL, gradient signal-to-noise.
Each takes plain Python or numpy values and a path and writes a PNG."""

from pathlib import Path

from vbayes.plots.figure import plt


def save_training_curves(records: list[dict], path: str | Path):
  """Left: the training loss (-ELBO per image on the training batches, nats) against
  step and, where the records hold them, the held-out -ELBO and -L_k (validation), on a
  scale that shows their gap (overfitting: the validation curve turns up while the
  training loss falls). Right: the loss's parts, -log p(x|z) and KL."""
  train = [r for r in records if "train_loss" in r]
  steps = [r["step"] for r in train]
  fig, (ax, parts) = plt.subplots(1, 2, figsize=(11, 4))
  shown = [r["train_loss"] for r in train]
  ax.plot(steps, shown, label="loss (training batches)")
  for name, label, style in (("validation_elbo", "validation -ELBO", "o-"),
                             ("validation_nll_is", "validation -L_k (IS)", "s--")):
    held = [r for r in records if r.get(name) is not None]
    if held:
      sign = -1 if name == "validation_elbo" else 1
      values = [sign * r[name] for r in held]
      shown += values
      k = f", k={held[-1]['validation_is_k']}" if name == "validation_nll_is" else ""
      ax.plot([r["step"] for r in held], values, style, markersize=3,
              label=label.replace("(IS)", f"(IS{k})"))
  if len(shown) > 10:  # leave out the first steps' large values
    low, high = min(shown), sorted(shown)[int(0.9 * len(shown))]
    ax.set_ylim(low - 0.1 * (high - low) - 0.5, high + 0.1 * (high - low) + 0.5)
  if train and "train_log_likelihood" in train[0]:
    parts.plot(steps, [-r["train_log_likelihood"] for r in train], label="-log p(x|z)")
  if train and "train_kl" in train[0]:
    parts.plot(steps, [r["train_kl"] for r in train], label="KL(q || p)")
  for a, ylabel in ((ax, "nats per image"), (parts, "nats per image (training batches)")):
    a.set_xlabel("step")
    a.set_ylabel(ylabel)
    a.grid(alpha=0.3)
    if a.get_legend_handles_labels()[0]:
      a.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
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
