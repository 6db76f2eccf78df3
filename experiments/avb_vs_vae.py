r"""A VAE against AVB with adaptive contrast on binarized MNIST, the comparison of
Mescheder et al. (2017), with the same decoder, latent dimension and number of steps.

    python -m experiments.avb_vs_vae --workdir=/tmp/vbayes/avb_vs_vae --manual_dir=../shared/data \
        --kde_images=1000

The study, its setup, runtime and expected results are its config's,
experiments/configs/avb_vs_vae.py; --config picks another, the flags below and --set
override its fields. Test NLL by importance sampling on the 10000 test images (the
VAE's encoder as its proposal; for AVB, the Gaussian moment-matched to 1000 encoder
samples), and on the first --kde_images test images also with the kernel density
of 1000 encoder samples as AVB's proposal (vbayes/evaluation/kernel_density.py).
The runs' folders are experiments.train workdirs.

Writes, in --workdir: vae/ and avb_ac/ (rerunning resumes or loads them),
results.json, results.md, and figures/: prior_samples.png (E[x | z], z ~ p(z),
the same z for both), reconstructions.png (test images, then each model's
E[x | z = E_q[z | x]]), latents.png (the test set's posterior means coloured by
digit, projected on their first two principal components when L > 2).
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common
from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes import keys, latent
from vbayes.plots import images as image_plots, latents as latent_plots
from vbayes.evaluation import estimators
from vbayes.training import metrics_io
from vbayes.training import loop as training_loop
from vbayes.models import build

FLAGS = flags.FLAGS
common.define_config_flags("avb_vs_vae")
flags.DEFINE_string("workdir", None, "Output folder.", required=True)
flags.DEFINE_integer("kde_images", 10000, "Test images also evaluated with AVB's kernel-density "
                     "proposal (and the VAE's encoder, for the same images); 0 to skip.")
flags.DEFINE_float("kde_bandwidth", 0.1, "Bandwidth h of the kernel-density proposal.")
flags.DEFINE_bool("fast", False, "Tiny settings for a smoke test (not for real results).")
common.define_data_flags()
# Shorthands for config fields (default: the config's; experiments/configs/avb_vs_vae.py).
flags.DEFINE_integer("latent_dim", None, "Latent dimension of both models (config: 8).")
flags.DEFINE_list("hidden_sizes", None, "Encoder hidden sizes; the decoder mirrors them "
                  "(config: 500,500).")
flags.DEFINE_integer("epochs", None, "Epochs for both models, 500 steps each (config: 100).")
flags.DEFINE_integer("eval_k", None, "Importance samples per test image (config: 5000).")
flags.DEFINE_integer("seed", None, "Seed of both models and of the figures' draws (config: 0).")
flags.DEFINE_integer("avb_moment_samples", None, "AVB+AC: encoder samples per image, apart "
                     "from the scored ones, for adaptive contrast's moments (0: the scored "
                     "ones, as in the README's earlier MNIST run; config: 128).")
SHORTHANDS = {
    "latent_dim": ("model.latent_dim",), "hidden_sizes": ("model.hidden_sizes",),
    "epochs": ("epochs",), "eval_k": ("eval_k",), "seed": ("seeds",),
    "avb_moment_samples": ("objective.moment_samples",)}
FAST = {"model.hidden_sizes": "32", "epochs": "1", "eval_k": "10", "batch_size": "20",
        "objective.adversary_hidden_sizes": "16"}

TITLES = {"vae": "VAE (ELBO)", "avb_ac": "AVB + adaptive contrast"}


def model_configs() -> dict[str, config_lib.TrainConfig]:
  """Each run's config: the study's, with the flags given (and --fast's tiny settings)."""
  study = common.config_from_flags(SHORTHANDS, extra=FAST if FLAGS.fast else None)
  if len(study.seeds) != 1:
    raise config_lib.ConfigError(f"avb_vs_vae compares its runs at one seed, got {study.seeds}")
  return {name: run for (name, _), run in study.configs().items()}


def principal_components(points_NxL):
  """Projection on the first two principal components and their shares of the variance."""
  centred = points_NxL - points_NxL.mean(axis=0)
  _, s, vt = np.linalg.svd(centred, full_matrices=False)
  share = s**2 / np.sum(s**2)
  return centred @ vt[:2].T, share[:2]


def main(argv):
  del argv
  configs = model_configs()
  base = next(iter(configs.values()))
  data = data_lib.load(base.data, data_dir=FLAGS.data_dir,
                       manual_dir=FLAGS.manual_dir, labels=True)
  workdir = Path(FLAGS.workdir)
  params = {name: training_loop.trained_params(
      config, workdir / name, data=data,
      log=lambda line, n=name: print(f"[{n}] {line}", flush=True))
            for name, config in configs.items()}

  results = {}
  for name in configs:
    records = metrics_io.read_metrics(workdir / name)
    train = [r for r in records if "train_seconds" in r]
    final = records[-1]
    results[name] = {key: final[key] for key in ("test_nll", "test_nll_stderr", "test_elbo",
                                                 "active_units", "proposal", "eval_k", "step")}
    results[name]["train_seconds"] = train[-1]["train_seconds"]
  kde_images = min(FLAGS.kde_images, len(data.test))
  if kde_images:
    for name, nll in first_images_nll(configs, params, data, kde_images).items():
      results[name][f"test_nll_first_{kde_images}"] = nll
  (workdir / "figures").mkdir(parents=True, exist_ok=True)
  (workdir / "results.json").write_text(json.dumps(results, indent=2))
  first = f"test_nll_first_{kde_images}"
  rows = [f"| model | test NLL, IS k={base.eval_k} (proposal) | first {kde_images} test images,"
          f" IS k={base.eval_k}: encoder / kernel density h={FLAGS.kde_bandwidth} | test −ELBO "
          "| active units | steps | training s |", "| --- | --- | --- | --- | --- | --- | --- |"]
  for name, r in results.items():
    elbo = "—" if r["test_elbo"] is None else f"{-r['test_elbo']:.2f}"
    kde = f"{r[first]:.2f}" if first in r else "—"
    rows.append(f"| {TITLES.get(name, name)} | {r['test_nll']:.2f} ± {r['test_nll_stderr']:.2f} "
                f"({r['proposal']}) | {kde} | {elbo} | "
                f"{r['active_units']} / {base.model.latent_dim} "
                f"| {r['step']} | {r['train_seconds']:.0f} |")
  table = "\n".join(rows)
  (workdir / "results.md").write_text(table + "\n")
  print(table)
  write_figures(workdir / "figures", configs, params, data)


def first_images_nll(configs, params, data, num: int) -> dict[str, float]:
  """Mean -log p(x) over the first `num` test images, k = eval_k: the VAE with its
  encoder as proposal, AVB with the kernel density of 1000 encoder samples."""
  first = next(iter(configs.values()))
  key = keys.stream(jax.random.key(first.seed), keys.STUDY_COMPARISON)
  settings = estimators.Settings(k=first.eval_k, kde_centres=1000,
                                 kde_bandwidth=FLAGS.kde_bandwidth)
  out = {}
  for name, config in configs.items():
    method = "is" if config.model.proposal.offers >= {"density"} else "kde"
    per_image, _ = estimators.ESTIMATORS[method](
        params[name], key, data.test[:num], model=build(config.model),
        binarization=data.binarization, settings=settings,
        log=lambda line, name=name: print(f"[{name}] {line}", flush=True))
    out[name] = float(-np.mean(per_image["log_px"]))
  return out


def write_figures(figures: Path, configs, params, data):
  first = next(iter(configs.values()))
  latent_dim = first.model.latent_dim
  key = keys.stream(jax.random.key(first.seed), keys.STUDY_FIGURES)
  rows, cols = 8, 8
  z = jax.random.normal(jax.random.fold_in(key, 0), (rows * cols, latent_dim))
  image_plots.save_image_grids(
      {f"{TITLES.get(n, n)}: E[x | z], z ~ N(0, I)":
       np.asarray(build(c.model).mean_image(params[n], z))
       for n, c in configs.items()}, data.image_shape, rows, cols, figures / "prior_samples.png")

  x = jnp.asarray(data.test, jnp.float32)
  means = {n: np.asarray(latent.posterior_means(params[n], jax.random.fold_in(key, 1), x,
                                                model=c.model))
           for n, c in configs.items()}
  recon = {"test x": np.asarray(x[:12])}
  for n, c in configs.items():
    recon[TITLES.get(n, n)] = np.asarray(
        build(c.model).mean_image(params[n], jnp.asarray(means[n][:12])))
  image_plots.save_image_rows(recon, data.image_shape, figures / "reconstructions.png")

  panels = {}
  for n in configs:
    if latent_dim > 2:
      points, share = principal_components(means[n])
      names = tuple(f"PC {i + 1} ({100 * s:.0f}% of variance)" for i, s in enumerate(share))
      title = f"{TITLES.get(n, n)}: E_q[z | x], PCA to 2-D"
    else:
      points, names, title = means[n], ("$z_1$", "$z_2$"), f"{TITLES.get(n, n)}: E_q[z | x]"
    panels[title] = (points, names)
  latent_plots.save_latent_scatters(panels, data.test_labels, figures / "latents.png")
  print(f"wrote {figures}")


if __name__ == "__main__":
  common.run(main)
