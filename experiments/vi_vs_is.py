r"""Seed 000 done fairly: one 2-D latent model trained by variational inference
(ELBO), by IWAE (k=50) and by importance sampling with the prior as proposal
(K=128, seed 000's setting, and K=512), with the same decoder, likelihood, data and
number of steps; then compared on held-out log-likelihood.

    python -m experiments.vi_vs_is --workdir=/tmp/vbayes/vi_vs_is --manual_dir=../shared/data

Defaults: fixed binarized MNIST, 784-200-200-2 ReLU networks (the prior-IS models
have no encoder), Bernoulli decoder, Adam 1e-3, batch 100, 10 epochs = 5000 steps
per model. Held-out NLL is exact 2-D grid quadrature (512^2 points on [-5, 5]^2)
and importance sampling with k=5000 (encoder proposal; prior proposal for the
models without an encoder). The curve of held-out NLL against training time uses
grid quadrature on the first 1000 test images after each epoch.
About 35 minutes on a 2-core CPU, mostly the K=512 model.

Writes, in --workdir: one subfolder per model (a full experiments.train workdir:
checkpoints, metrics, figures; rerunning resumes), results.json (per model:
test_nll_quadrature, test_nll_is, test_elbo, seconds_per_step, train_seconds),
results.md (the table), figures/grid_walks.png and figures/nll_vs_time.png.
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
from vbayes import plots
from vbayes.evaluation import grid
from vbayes.training import metrics_io
from vbayes.training import loop as trainer
from vbayes.models import build
from vbayes.objectives import iwae, prior_is

FLAGS = flags.FLAGS
CURVE_STREAM = 1003  # the held-out curve's binarization key: fold_in(key(seed), 1003)
flags.DEFINE_string("workdir", None, "Output folder.", required=True)
flags.DEFINE_enum("dataset", "binarized_mnist", ("binarized_mnist", "mnist"), "Dataset.")
flags.DEFINE_list("hidden_sizes", ["200", "200"], "Hidden sizes (decoder mirrors encoder).")
flags.DEFINE_integer("epochs", 10, "Epochs for every model (the same number of steps).")
flags.DEFINE_integer("batch_size", 100, "Images per step.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("iwae_k", 50, "Samples per image for the IWAE model.")
flags.DEFINE_list("prior_k", ["128", "512"], "Prior samples per image for each prior-IS model.")
flags.DEFINE_integer("eval_k", 5000, "Importance samples per test image.")
flags.DEFINE_integer("quadrature_points", 512, "Grid points per axis.")
flags.DEFINE_integer("curve_images", 1000, "Test images for the held-out NLL curve.")
flags.DEFINE_integer("seed", 0, "Seed, shared by all models.")
flags.DEFINE_string("manual_dir", None, "Offline data folder like ../shared/data.")
flags.DEFINE_string("data_dir", None, "tfds data dir.")


def model_configs() -> dict[str, config_lib.TrainConfig]:
  hidden = tuple(int(h) for h in FLAGS.hidden_sizes)
  base = dict(
      model=config_lib.ModelConfig(latent_dim=2, hidden_sizes=hidden),
      data=config_lib.DataConfig(dataset=FLAGS.dataset,
                                 binarization=config_lib.DATASET_BINARIZATIONS[FLAGS.dataset][0]),
      batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate, epochs=FLAGS.epochs,
      seed=FLAGS.seed, eval_k=FLAGS.eval_k, quadrature_points=FLAGS.quadrature_points)
  configs = {"elbo": config_lib.TrainConfig(objective="elbo", **base),
             f"iwae_k{FLAGS.iwae_k}": config_lib.TrainConfig(
                 objective=iwae.Config(k=FLAGS.iwae_k), **base)}
  for k in FLAGS.prior_k:
    configs[f"prior_is_k{int(k)}"] = config_lib.TrainConfig(objective=prior_is.Config(k=int(k)),
                                                            **base)
  return configs


def main(argv):
  del argv
  configs = model_configs()
  first = next(iter(configs.values()))
  data = data_lib.load(first.data, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir)
  workdir = Path(FLAGS.workdir)
  # The curve's images are binarized once, as the final evaluation binarizes its own.
  curve_x = data_lib.to_float(jax.random.fold_in(jax.random.key(FLAGS.seed), CURVE_STREAM),
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
    final = trainer.run(config, workdir / name, data=data,
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
    params[name] = trainer.restore_params(workdir / name, config)
  write_outputs(workdir, configs, results, params, data.image_shape)


def write_outputs(workdir: Path, configs, results, params, image_shape):
  (workdir / "figures").mkdir(parents=True, exist_ok=True)
  (workdir / "results.json").write_text(json.dumps(results, indent=2))
  rows = ["| model | held-out NLL, quadrature | held-out NLL, IS k=%d (proposal) | test −ELBO |"
          " s/step | training s |" % FLAGS.eval_k, "| --- | --- | --- | --- | --- | --- |"]
  for name, r in results.items():
    elbo = "—" if r["is_proposal"] == "prior" else f"{-r['test_elbo']:.2f}"
    rows.append(f"| {name} | {r['test_nll_quadrature']:.2f} | {r['test_nll_is']:.2f} "
                f"({r['is_proposal']}) | {elbo} | {r['seconds_per_step'] * 1e3:.1f} ms | "
                f"{r['train_seconds']:.0f} |")
  table = "\n".join(rows)
  (workdir / "results.md").write_text(table + "\n")
  print(table)
  points, limit = 15, 3.0
  z = jnp.asarray(plots.latent_walk_points(points, limit))
  walks = {name: np.asarray(build(configs[name].model).mean_image(params[name], z))
           for name in configs}
  plots.save_grid_walks(walks, image_shape, points, limit, workdir / "figures" / "grid_walks.png")
  curves = {}
  for name in configs:
    records = metrics_io.read_metrics(workdir / name)
    seconds = {r["step"]: r["train_seconds"] for r in records if "train_seconds" in r}
    curves[name] = [(seconds[r["step"]], r["heldout_nll_quadrature"]) for r in records
                    if "heldout_nll_quadrature" in r and r["step"] in seconds]
  plots.save_nll_curves(curves, workdir / "figures" / "nll_vs_time.png",
                        f"held-out NLL (grid quadrature, first {FLAGS.curve_images} test images)")


if __name__ == "__main__":
  common.run(main)
