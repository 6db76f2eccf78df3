"""The model the 2-D posterior figure scripts share: its config, flags and loading.

Every script takes the same --workdir: the model lives in workdir/model (a full
experiments.train workdir: config, metrics with the test NLL, checkpoints) and
each figure goes to workdir/figures/<name>.png. The first script run trains the
model (or resumes it); the others load it. --model_workdir points at another
run instead, e.g. one of `python -m experiments.train --config=vae_2d`.

The model is the config's, experiments/configs/vae_2d.py by default: the README's
2-D latent VAE on fixed binarized MNIST (784-500-500-2, 100 epochs; about 3
minutes of training and 5 of k=5000 evaluation on a 2-core CPU, once); --config,
the flags below and --set change it. --fast swaps in tiny settings (one epoch, 32
hidden units, few samples and grid points) so that the tests run every script end
to end in seconds.
"""

from pathlib import Path

import jax
from absl import flags

from experiments import common
from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes.training import loop as training_loop

FLAGS = flags.FLAGS
common.define_config_flags("vae_2d")
flags.DEFINE_string("workdir", None, "Folder for the model (model/) and figures (figures/).",
                    required=True)
flags.DEFINE_string("model_workdir", None, "The model's run folder (default: workdir/model).")
flags.DEFINE_bool("fast", False, "Tiny settings for a smoke test (not for real figures).")
common.define_data_flags()
# Shorthands for config fields (default: the config's; experiments/configs/vae_2d.py).
flags.DEFINE_list("hidden_sizes", None, "Encoder hidden sizes; the decoder mirrors them "
                  "(config: 500,500).")
flags.DEFINE_integer("epochs", None, "Training epochs of the model (config: 100).")
flags.DEFINE_integer("seed", None, "Root seed of the model's training and of the figures' "
                     "draws (config: 0).")
flags.DEFINE_integer("eval_k", None, "Importance samples per test image for the model's NLL "
                     "(config: 5000).")
SHORTHANDS = {"hidden_sizes": ("model.hidden_sizes",), "epochs": ("epochs",),
              "seed": ("seed",), "eval_k": ("eval_k",)}
FAST = {"model.hidden_sizes": "32", "epochs": "1", "eval_k": "10", "quadrature_points": "64",
        "batch_size": "20"}
FIGURE_STREAM = 1001


def train_config() -> config_lib.TrainConfig:
  """The config, with the flags given (and --fast's tiny settings); a 2-D latent."""
  config = common.config_from_flags(SHORTHANDS, extra=FAST if FLAGS.fast else None)
  if not isinstance(config, config_lib.TrainConfig) or config.model.latent_dim != 2:
    raise config_lib.ConfigError(f"the 2-D figure scripts need one model with a 2-D latent; "
                                 f"--config={FLAGS.config} is not one")
  return config


def load_model():
  """(config, params, data with test labels, figures folder, key for the figure's draws).

  The figure key is fold_in(key(seed), FIGURE_STREAM): apart from the model's
  init, data, training and evaluation streams (training.loop's 0-3).
  """
  config = train_config()
  data = data_lib.load(config.data, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
                       labels=True)
  workdir = Path(FLAGS.workdir)
  model_dir = Path(FLAGS.model_workdir) if FLAGS.model_workdir else workdir / "model"
  params = training_loop.trained_params(config, model_dir, data=data,
                                  log=lambda line: print(f"[model] {line}", flush=True))
  figures = workdir / "figures"
  figures.mkdir(parents=True, exist_ok=True)
  return (config, params, data, figures,
          jax.random.fold_in(jax.random.key(config.seed), FIGURE_STREAM))


def first_of_each(labels, digits) -> list[int]:
  """Index of the first test image of each digit; a clear error for a digit with none."""
  found = []
  for d in digits:
    where = (labels == d).nonzero()[0]
    if not len(where):
      raise ValueError(f"the test split has no image of digit {d}")
    found.append(int(where[0]))
  return found
