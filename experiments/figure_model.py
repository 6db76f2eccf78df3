"""The model the seed 001 figure scripts share, and their common flags.

Every script takes the same --workdir: the model lives in workdir/model (a full
experiments.train workdir: config, metrics with the test NLL, checkpoints) and
each figure goes to workdir/figures/<name>.png. The first script run trains the
model (or resumes it); the others load it. --model_workdir points at another
run instead, e.g. the README's main command's /tmp/vbayes/vae2d with --epochs=10.

The default model is seed 001's: a 2-D latent VAE on binarized MNIST (fixed,
Larochelle), 784-500-500-2 ReLU encoder and mirror Bernoulli decoder, ELBO with
analytic KL, Adam 1e-3, batch 100, 100 epochs. On the 2-core CPU: about 3 minutes
of training and 5 of k=5000 evaluation, once.

--fast swaps in tiny settings (one epoch, 32 hidden units, few samples and grid
points) so that the tests run every script end to end in seconds.
"""

from pathlib import Path

import jax
from absl import flags

from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes.training import loop as trainer

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for the model (model/) and figures (figures/).",
                    required=True)
flags.DEFINE_string("model_workdir", None, "The model's run folder (default: workdir/model).")
flags.DEFINE_list("hidden_sizes", ["500", "500"], "Encoder hidden sizes; the decoder mirrors them.")
flags.DEFINE_integer("epochs", 100, "Training epochs of the model.")
flags.DEFINE_integer("seed", 0, "Root seed of the model's training and of the figures' draws.")
flags.DEFINE_integer("eval_k", 5000, "Importance samples per test image for the model's NLL.")
flags.DEFINE_bool("fast", False, "Tiny settings for a smoke test (not for real figures).")
flags.DEFINE_string("manual_dir", None, "Offline data folder like ../shared/data.")
flags.DEFINE_string("data_dir", None, "tfds data dir.")

FIGURE_STREAM = 1001
FAST_MODEL = dict(hidden_sizes=(32,), epochs=1, eval_k=10, quadrature_points=64)


def train_config() -> config_lib.TrainConfig:
  hidden = tuple(int(h) for h in FLAGS.hidden_sizes)
  settings = dict(hidden_sizes=hidden, epochs=FLAGS.epochs, eval_k=FLAGS.eval_k,
                  quadrature_points=512)
  if FLAGS.fast:
    settings.update(FAST_MODEL)
  return config_lib.TrainConfig(
      model=config_lib.ModelConfig(latent_dim=2, hidden_sizes=settings["hidden_sizes"]),
      data=config_lib.DataConfig(dataset="binarized_mnist", binarization="fixed"),
      epochs=settings["epochs"], seed=FLAGS.seed, eval_k=settings["eval_k"],
      quadrature_points=settings["quadrature_points"],
      batch_size=20 if FLAGS.fast else 100)


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
  params = trainer.trained_params(config, model_dir, data=data,
                                  log=lambda line: print(f"[model] {line}", flush=True))
  figures = workdir / "figures"
  figures.mkdir(parents=True, exist_ok=True)
  return config, params, data, figures, jax.random.fold_in(jax.random.key(FLAGS.seed), FIGURE_STREAM)


def first_of_each(labels, digits) -> list[int]:
  """Index of the first test image of each digit; a clear error for a digit with none."""
  found = []
  for d in digits:
    where = (labels == d).nonzero()[0]
    if not len(where):
      raise ValueError(f"the test split has no image of digit {d}")
    found.append(int(where[0]))
  return found
