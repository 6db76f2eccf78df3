r"""Variational inference against importance sampling, done fairly: one 2-D latent
model trained by the ELBO, by IWAE and by importance sampling with the prior as
proposal, with the same decoder, likelihood, data and number of steps; then
compared on held-out log-likelihood (exact grid quadrature, and importance
sampling), with a curve of held-out NLL against training time (quadrature on the
first --curve_images test images after each epoch).

    python -m experiments.vi_vs_is --workdir=/tmp/vbayes/vi_vs_is --manual_dir=../shared/data

The study, its setup, runtime and expected results are its config's,
experiments/configs/vi_vs_is.py; --config picks another, the flags below and --set
override its fields.

Writes, in --workdir: one subfolder per model (a full experiments.train workdir:
checkpoints, metrics, figures; rerunning resumes), results.json (per model:
test_nll_quadrature, test_nll_is, test_elbo, seconds_per_step, train_seconds),
results.md (the table), figures/grid_walks.png and figures/nll_vs_time.png.
"""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common
from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes import keys
from vbayes.plots import curves as curve_plots, latents as latent_plots
from vbayes.evaluation import grid
from vbayes.training import metrics_io
from vbayes.training import loop as training_loop
from vbayes.models import build

FLAGS = flags.FLAGS
common.define_config_flags("vi_vs_is")
flags.DEFINE_string("workdir", None, "Output folder.", required=True)
flags.DEFINE_integer("curve_images", 1000, "Test images for the held-out NLL curve.")
common.define_data_flags()
# Shorthands for config fields (default: the config's; experiments/configs/vi_vs_is.py).
flags.DEFINE_enum("dataset", None, ("binarized_mnist", "mnist"), "Dataset (config: "
                  "binarized_mnist; mnist is binarized dynamically).")
flags.DEFINE_list("hidden_sizes", None, "Hidden sizes, decoder mirrors encoder (config: 200,200).")
flags.DEFINE_integer("epochs", None, "Epochs for every model, the same number of steps "
                     "(config: 10).")
flags.DEFINE_integer("batch_size", None, "Images per step (config: 100).")
flags.DEFINE_float("learning_rate", None, "Adam learning rate (config: 1e-3).")
flags.DEFINE_integer("eval_k", None, "Importance samples per test image (config: 5000).")
flags.DEFINE_integer("quadrature_points", None, "Grid points per axis (config: 512).")
flags.DEFINE_integer("seed", None, "Seed, shared by all models (config: 0).")
flags.DEFINE_integer("iwae_k", None, "Samples per image of the IWAE model, named iwae_k<k> "
                     "(config: 50).")
flags.DEFINE_list("prior_k", None, "Prior samples per image, one prior-IS model each, named "
                  "prior_is_k<K> (config: 128,512).")
SHORTHANDS = {
    "dataset": ("data.dataset",), "hidden_sizes": ("model.hidden_sizes",), "epochs": ("epochs",),
    "batch_size": ("batch_size",), "learning_rate": ("learning_rate",), "eval_k": ("eval_k",),
    "quadrature_points": ("quadrature_points",), "seed": ("seeds",)}


def study() -> config_lib.Study:
  """The config's study with the flags given; --iwae_k and --prior_k replace its IWAE
  and prior-IS runs by ones named after their k."""
  config = common.config_from_flags(SHORTHANDS)
  if len(config.seeds) != 1:
    raise config_lib.ConfigError(f"vi_vs_is compares its runs at one seed, got {config.seeds}")
  runs = []
  for name, run in config.runs:
    objective = run.objective.name
    if objective == "iwae" and FLAGS.iwae_k is not None:
      runs.append((f"iwae_k{FLAGS.iwae_k}", run.replace_objective(
          run.objective.replace(k=FLAGS.iwae_k))))
    elif objective == "prior_is" and FLAGS.prior_k is not None:
      if all(r.objective.name != "prior_is" for _, r in runs):  # once, for the first
        runs += [(f"prior_is_k{int(k)}", run.replace_objective(run.objective.replace(k=int(k))))
                 for k in FLAGS.prior_k]
    else:
      runs.append((name, run))
  return dataclasses.replace(config, runs=tuple(runs))


def main(argv):
  del argv
  config = study()
  seed = config.seeds[0]
  configs = {name: run for (name, _), run in config.configs().items()}
  first = next(iter(configs.values()))
  data = data_lib.load(first.data, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir)
  workdir = Path(FLAGS.workdir)
  # The curve's images are binarized once, as the final evaluation binarizes its own.
  curve_x = data_lib.to_float(keys.stream(jax.random.key(seed), keys.STUDY_CURVE),
                              jnp.asarray(data.test[:FLAGS.curve_images]), data.binarization)

  def held_out_nll(step, params, model):
    del step
    log_px = grid.quadrature_log_likelihood(params, curve_x, model=model,
                                            limit=first.quadrature_limit,
                                            points=first.quadrature_points)
    return {"heldout_nll_quadrature": float(-jnp.mean(log_px))}

  results, params = {}, {}
  for name, config in configs.items():
    print(f"== {name}", flush=True)
    final = training_loop.run(config, workdir / name, data=data,
                        log=lambda line, n=name: print(f"[{n}] {line}", flush=True),
                        epoch_hook=lambda s, p, m=config.model: held_out_nll(s, p, m))
    records = metrics_io.read_metrics(workdir / name)
    train = [r for r in records if "train_seconds" in r]
    results[name] = {
        "objective": config.objective.name, "k": getattr(config.objective, "k", 1),
        "test_nll_quadrature": final["test_nll_quadrature"], "test_nll_is": final["test_nll"],
        "is_proposal": final["proposal"], "test_elbo": final["test_elbo"],
        "seconds_per_step": 1.0 / train[-1]["steps_per_s"],
        "train_seconds": train[-1]["train_seconds"], "steps": final["step"]}
    params[name] = training_loop.restore_params(workdir / name, config)
  write_outputs(workdir, configs, results, params, data.image_shape)


def write_outputs(workdir: Path, configs, results, params, image_shape):
  (workdir / "figures").mkdir(parents=True, exist_ok=True)
  (workdir / "results.json").write_text(json.dumps(results, indent=2))
  rows = ["| model | held-out NLL, quadrature | held-out NLL, IS k=%d (proposal) | test −ELBO |"
          " s/step | training s |" % next(iter(configs.values())).eval_k,
          "| --- | --- | --- | --- | --- | --- |"]
  for name, r in results.items():
    elbo = "—" if r["is_proposal"] == "prior" else f"{-r['test_elbo']:.2f}"
    rows.append(f"| {name} | {r['test_nll_quadrature']:.2f} | {r['test_nll_is']:.2f} "
                f"({r['is_proposal']}) | {elbo} | {r['seconds_per_step'] * 1e3:.1f} ms | "
                f"{r['train_seconds']:.0f} |")
  table = "\n".join(rows)
  (workdir / "results.md").write_text(table + "\n")
  print(table)
  points, limit = 15, 3.0
  z = jnp.asarray(latent_plots.latent_walk_points(points, limit))
  walks = {name: np.asarray(build(configs[name].model).mean_image(params[name], z))
           for name in configs}
  latent_plots.save_grid_walks(walks, image_shape, points, limit,
                               workdir / "figures" / "grid_walks.png")
  curves = {}
  for name in configs:
    records = metrics_io.read_metrics(workdir / name)
    seconds = {r["step"]: r["train_seconds"] for r in records if "train_seconds" in r}
    curves[name] = [(seconds[r["step"]], r["heldout_nll_quadrature"]) for r in records
                    if "heldout_nll_quadrature" in r and r["step"] in seconds]
  curve_plots.save_nll_curves(curves, workdir / "figures" / "nll_vs_time.png",
                        f"held-out NLL (grid quadrature, first {FLAGS.curve_images} test images)")


if __name__ == "__main__":
  common.run(main)
