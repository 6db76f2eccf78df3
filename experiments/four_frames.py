r"""4Frames, where the answer is known: a VAE, AVB and AVB with adaptive contrast
against the best possible log-likelihood.

    python -m experiments.four_frames --workdir=/tmp/vbayes/four_frames

The study, its setup, runtime and expected results are its config's,
experiments/configs/four_frames.py; --config picks another, the flags below and
--set override its fields (--set=avb_ac.objective.samples=32 sets one run's).
--models trains a subset of its runs.

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
from vbayes import keys, latent
from vbayes.plots import latents as latent_plots
from vbayes.training import metrics_io
from vbayes.training import loop as training_loop

FLAGS = flags.FLAGS
common.define_config_flags("four_frames")
flags.DEFINE_string("workdir", None, "Output folder.", required=True)
flags.DEFINE_list("models", None, "Which of the study's runs to train (default: all; the "
                  "four_frames config's are vae, avb, avb_ac).")
flags.DEFINE_integer("samples", 500, "Samples from q(z|x) per image in the figure.")
# Shorthands for config fields (default: the config's; experiments/configs/four_frames.py).
flags.DEFINE_list("seeds", None, "Seeds; every model is trained with each (config: 0,1,2).")
flags.DEFINE_integer("epochs", None, "Epochs of the 1000 training images, 10 steps each "
                     "(config: 1000).")
flags.DEFINE_list("hidden_sizes", None, "Encoder hidden sizes; the decoder mirrors them "
                  "(config: 64,64).")
flags.DEFINE_list("adversary_hidden_sizes", None, "AVB adversary hidden sizes (config: 64,64).")
flags.DEFINE_integer("adversary_steps", None, "AVB adversary updates per model update "
                     "(config: 5).")
flags.DEFINE_float("learning_rate", None, "Adam learning rate, model and adversary (config: "
                   "1e-3).")
flags.DEFINE_integer("batch_size", None, "Images per step (config: 100).")
flags.DEFINE_integer("avb_samples", None, "Encoder samples per image in AVB's losses "
                     "(config: 8).")
flags.DEFINE_integer("avb_moment_samples", None, "Encoder samples per image, apart from the "
                     "scored ones, for adaptive contrast's moments (0: the scored ones, as "
                     "in the README's 4Frames rows marked †; config: 128).")
SHORTHANDS = {
    "seeds": ("seeds",), "epochs": ("epochs",), "hidden_sizes": ("model.hidden_sizes",),
    "adversary_hidden_sizes": ("objective.adversary_hidden_sizes",),
    "adversary_steps": ("objective.adversary_steps",),
    "learning_rate": ("learning_rate", "objective.adversary_learning_rate"),
    "batch_size": ("batch_size",), "avb_samples": ("objective.samples",),
    "avb_moment_samples": ("objective.moment_samples",)}

TITLES = {"vae": "VAE (ELBO)", "avb": "AVB", "avb_ac": "AVB + adaptive contrast"}
BEST_NLL = float(np.log(4.0))


def study() -> config_lib.Study:
  """The config's study with the flags given, and only the runs --models names."""
  config = common.config_from_flags(SHORTHANDS)
  names = [name for name, _ in config.runs]
  if FLAGS.models is not None and (not FLAGS.models or set(FLAGS.models) - set(names)):
    raise ValueError(f"--models takes some of {', '.join(names)}, got {FLAGS.models}")
  return config.select(FLAGS.models or names)


def main(argv):
  del argv
  config = study()
  seeds, names = list(config.seeds), [name for name, _ in config.runs]
  configs = config.configs()
  workdir = Path(FLAGS.workdir)
  data = data_lib.load(config.runs[0][1].data)
  results = {name: [] for name in names}
  params = {}
  for (name, seed), run in configs.items():
    run_dir = workdir / f"{name}_seed{seed}"
    params[name, seed] = training_loop.trained_params(
        run, run_dir, data=data,
        log=lambda line, n=f"{name} seed {seed}": print(f"[{n}] {line}", flush=True))
    results[name].append(metrics_io.read_metrics(run_dir)[-1]["test_nll_quadrature"])
  (workdir / "figures").mkdir(parents=True, exist_ok=True)
  (workdir / "results.json").write_text(json.dumps(results, indent=2))
  table = results_table(results, seeds)
  (workdir / "results.md").write_text(table + "\n")
  print(table)

  images = jnp.asarray(data_lib.four_frames(1), jnp.float32)
  key = keys.stream(jax.random.key(seeds[0]), keys.STUDY_FIGURES)
  panels = {}
  for name in names:
    title, run = TITLES.get(name, name), configs[name, seeds[0]]
    panels[f"{title}: NLL {results[name][0]:.3f}"] = np.stack([
        np.asarray(latent.posterior_samples(params[name, seeds[0]], jax.random.fold_in(key, i),
                                            x, model=run.model, num=FLAGS.samples))
        for i, x in enumerate(images)])
  path = workdir / "figures" / "four_frames_latents.png"
  latent_plots.save_posterior_samples(panels, np.asarray(images), data.image_shape, path)
  print(f"wrote {path}")


def results_table(results: dict, seeds: list[int]) -> str:
  rows = [f"| model | exact test NLL, mean ± sample sd (ddof=1) over seeds {seeds} | per seed "
          "| gap to log 4 |",
          "| --- | --- | --- | --- |"]
  for name, nll in results.items():
    title, nll = TITLES.get(name, name), np.array(nll)
    rows.append(f"| {title} | {common.mean_and_spread(nll)} | "
                f"{', '.join(f'{v:.3f}' for v in nll)} | {nll.mean() - BEST_NLL:+.3f} |")
  rows.append(f"| best possible | {BEST_NLL:.3f} (log 4) | | |")
  return "\n".join(rows)


if __name__ == "__main__":
  common.run(main)
