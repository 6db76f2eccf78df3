r"""4Frames, where the answer is known: a VAE, AVB and AVB with adaptive contrast
against the best possible log-likelihood.

    python -m experiments.four_frames --workdir=/tmp/vbayes/four_frames

The data is uniform over four 2x2 binary images with one pixel on, so no model
beats log p(x) = -log 4 = -1.386 nats per image. Every model has a 2-D latent,
the same 4-64-64-2 ReLU decoder (mirror encoder; AVB's encoder takes 2 noise
inputs too, its adversary is 64-64 with 5 updates per model update), Bernoulli
likelihood, Adam 1e-3, batch 100
and 10000 steps (1000 epochs of the 1000-image training set), for seeds 0, 1, 2.
log p(x) is computed exactly by grid quadrature (512^2 points on [-5, 5]^2).
About 5 minutes on a 2-core CPU. --models trains a subset; --avb_samples sets the
encoder samples per image of AVB's losses (and of adaptive contrast's moments).

Writes, in --workdir: one experiments.train workdir per model and seed (rerunning
resumes or loads them), results.json ({"vae": [NLL per seed], "avb": [...],
"avb_ac": [...]}, positive nats), results.md (the table) and
figures/four_frames_latents.png (samples from q(z|x) for each image, coloured by
image, one panel per model, seed 0).
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
from vbayes import latent, latent_plots
from vbayes.training import metrics_io
from vbayes.training import loop as trainer
from vbayes.objectives import avb

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Output folder.", required=True)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; every model is trained with each.")
flags.DEFINE_integer("epochs", 1000, "Epochs of the 1000 training images (10 steps each).")
flags.DEFINE_list("hidden_sizes", ["64", "64"], "Encoder hidden sizes; the decoder mirrors them.")
flags.DEFINE_list("adversary_hidden_sizes", ["64", "64"], "AVB adversary hidden sizes.")
flags.DEFINE_integer("adversary_steps", 5, "AVB adversary updates per model update.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (model and adversary).")
flags.DEFINE_integer("batch_size", 100, "Images per step.")
flags.DEFINE_integer("samples", 500, "Samples from q(z|x) per image in the figure.")
flags.DEFINE_integer("avb_samples", 8, "Encoder samples per image in AVB's losses.")
flags.DEFINE_integer("avb_moment_samples", 128, "Encoder samples per image, apart from the "
                     "scored ones, for adaptive contrast's moments (0: the scored ones, as "
                     "in the README's 4Frames table).")
flags.DEFINE_list("models", ["vae", "avb", "avb_ac"], "Which of vae, avb, avb_ac to train.")

MODELS = {"vae": "VAE (ELBO)", "avb": "AVB", "avb_ac": "AVB + adaptive contrast"}
BEST_NLL = float(np.log(4.0))


def model_config(name: str, seed: int) -> config_lib.TrainConfig:
  hidden = tuple(int(h) for h in FLAGS.hidden_sizes)
  is_avb = name != "vae"
  return config_lib.TrainConfig(
      model=config_lib.ModelConfig(data_dim=4, latent_dim=2, hidden_sizes=hidden,
                                   encoder="implicit" if is_avb else "gaussian"),
      data=config_lib.DataConfig(dataset="4frames"),
      objective=avb.Config(
          adaptive_contrast=name == "avb_ac",
          adversary_hidden_sizes=tuple(int(h) for h in FLAGS.adversary_hidden_sizes),
          adversary_learning_rate=FLAGS.learning_rate, adversary_steps=FLAGS.adversary_steps,
          samples=FLAGS.avb_samples, moment_samples=FLAGS.avb_moment_samples)
      if is_avb else "elbo", batch_size=FLAGS.batch_size,
      learning_rate=FLAGS.learning_rate, epochs=FLAGS.epochs, seed=seed, steps_per_call=100,
      eval_k=1000, checkpoint_every_epochs=100)


def main(argv):
  del argv
  seeds = [int(s) for s in FLAGS.seeds]
  unknown = sorted(set(FLAGS.models) - set(MODELS))
  if unknown or not FLAGS.models:
    raise ValueError(f"--models takes some of {', '.join(MODELS)}, got {FLAGS.models}")
  names = [name for name in MODELS if name in FLAGS.models]
  configs = {(name, s): model_config(name, s) for name in names for s in seeds}
  workdir = Path(FLAGS.workdir)
  data = data_lib.load(config_lib.DataConfig(dataset="4frames"))
  results = {name: [] for name in names}
  params = {}
  for (name, seed), config in configs.items():
    run_dir = workdir / f"{name}_seed{seed}"
    params[name, seed] = trainer.trained_params(
        config, run_dir, data=data,
        log=lambda line, n=f"{name} seed {seed}": print(f"[{n}] {line}", flush=True))
    results[name].append(metrics_io.read_metrics(run_dir)[-1]["test_nll_quadrature"])
  (workdir / "figures").mkdir(parents=True, exist_ok=True)
  (workdir / "results.json").write_text(json.dumps(results, indent=2))
  table = results_table(results, seeds)
  (workdir / "results.md").write_text(table + "\n")
  print(table)

  images = jnp.asarray(data_lib.four_frames(1), jnp.float32)
  key = jax.random.fold_in(jax.random.key(seeds[0]), 1001)
  panels = {}
  for name in names:
    title, config = MODELS[name], configs[name, seeds[0]]
    panels[f"{title}: NLL {results[name][0]:.3f}"] = np.stack([
        np.asarray(latent.posterior_samples(params[name, seeds[0]], jax.random.fold_in(key, i),
                                            x, model=config.model, num=FLAGS.samples))
        for i, x in enumerate(images)])
  path = workdir / "figures" / "four_frames_latents.png"
  latent_plots.save_posterior_samples(panels, np.asarray(images), data.image_shape, path)
  print(f"wrote {path}")


def mean_and_spread(values) -> str:
  """'mean ± s' with the sample sd s = sqrt(sum_i (v_i - mean)^2 / (n - 1)) over n
  seeds (ddof=1); one seed has no s."""
  v = np.asarray(values, np.float64)
  if len(v) < 2:
    return f"{v.mean():.3f} (one seed)"
  return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def results_table(results: dict, seeds: list[int]) -> str:
  rows = [f"| model | exact test NLL, mean ± sample sd (ddof=1) over seeds {seeds} | per seed "
          "| gap to log 4 |",
          "| --- | --- | --- | --- |"]
  for name, nll in results.items():
    title, nll = MODELS[name], np.array(nll)
    rows.append(f"| {title} | {mean_and_spread(nll)} | "
                f"{', '.join(f'{v:.3f}' for v in nll)} | {nll.mean() - BEST_NLL:+.3f} |")
  rows.append(f"| best possible | {BEST_NLL:.3f} (log 4) | | |")
  return "\n".join(rows)


if __name__ == "__main__":
  common.run(main)
