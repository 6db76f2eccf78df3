r"""Trains a VAE, evaluates it on the test split and writes figures.

    python -m experiments.train --workdir=/tmp/vbayes/vae2d --manual_dir=../shared/data

Defaults: binarized MNIST (Larochelle's fixed binarization), 784-500-500-2
encoder and mirror decoder (ReLU), Bernoulli decoder, ELBO with analytic KL,
Adam 1e-3, batch 100, 10 epochs (5000 steps), test NLL with k=5000 importance
samples plus grid quadrature (2-D latents). On a 2-core CPU: about 20 s of
training (1.7 s per epoch) and 4-5 minutes of k=5000 evaluation. The README
gives the measured results of 100-epoch runs (2-D: 127.7 nats by quadrature).
Other objectives: --objective=iwae --k=50 --estimator=dreg, --objective=prior_is,
--objective=avb [--adaptive_contrast] (adversarial variational Bayes), and any other
in vbayes/objectives/. Each objective's settings are flags of their names (its
Config's fields); a flag of another objective's setting is an error.

Re-running with the same --workdir resumes from its last checkpoint.
"""

from absl import flags

import dataclasses
import typing

from experiments import common
from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes import datasets, objectives
from vbayes.training import loop as trainer
from vbayes.objectives import elbo, iwae

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for config, metrics, checkpoints and figures.",
                    required=True)
flags.DEFINE_enum("dataset", "binarized_mnist", config_lib.DATASETS, "Dataset.")
flags.DEFINE_enum("binarization", "auto", ("auto", *config_lib.BINARIZATIONS),
                  "auto: fixed for binarized_mnist and 4frames, dynamic for mnist.")
flags.DEFINE_enum("decoder", "auto", ("auto", *config_lib.LIKELIHOODS),
                  "Decoder p(x|z). auto: gaussian for --binarization=none, else bernoulli.")
flags.DEFINE_enum("objective", "elbo", tuple(objectives.REGISTRY),
                  "The training objective (vbayes/objectives/); its settings are the flags "
                  "below of their names.")
# Objective settings (vbayes/objectives/*.Config): each flag sets the field of its name
# (FLAG_FOR_SETTING renames a few); one left at its default leaves the objective's own.
flags.DEFINE_integer("k", None, "Samples per image, for the objectives that take k (default: "
                     "the objective's, 50 for iwae, 128 for prior_is).")
flags.DEFINE_enum("estimator", "reparam", iwae.ESTIMATORS,
                  "Encoder gradient estimator for iwae: reparam, stl or dreg.")
flags.DEFINE_enum("kl_estimator", "analytic", elbo.KL_ESTIMATORS, "KL term of the ELBO.")
flags.DEFINE_bool("adaptive_contrast", False, "avb: adaptive contrast (AVB+AC).")
flags.DEFINE_integer("avb_samples", 8, "avb: encoder samples per image per loss.")
flags.DEFINE_integer("avb_moment_samples", 128, "avb: encoder samples per image, apart from "
                     "the scored ones, for adaptive contrast's moments (0: the scored ones).")
flags.DEFINE_list("adversary_hidden_sizes", ["256", "256"], "avb: hidden sizes of T(x, z).")
flags.DEFINE_float("adversary_learning_rate", 1e-3, "avb: Adam learning rate of the adversary.")
flags.DEFINE_integer("adversary_steps", 1, "avb: adversary updates per model update.")
flags.DEFINE_integer("kl_warmup_steps", 0, "avb: the KL weight rises linearly to 1 over "
                     "this many steps (0: no warm-up).")
FLAG_FOR_SETTING = {"samples": "avb_samples", "moment_samples": "avb_moment_samples"}
OBJECTIVE_FLAGS = ("k", "estimator", "kl_estimator", "adaptive_contrast", "avb_samples",
                   "avb_moment_samples", "adversary_hidden_sizes", "adversary_learning_rate",
                   "adversary_steps", "kl_warmup_steps")
flags.DEFINE_integer("noise_dim", 0, "avb: noise inputs of the implicit encoder (0: latent_dim).")
flags.DEFINE_float("grad_clip", 0.0, "Clip gradients to this global norm (0: no clipping).")
flags.DEFINE_integer("latent_dim", 2, "Latent dimension L.")
flags.DEFINE_list("hidden_sizes", ["500", "500"], "Encoder hidden sizes; the decoder mirrors them.")
flags.DEFINE_enum("activation", "relu", config_lib.ACTIVATIONS, "Hidden activation.")
flags.DEFINE_integer("epochs", 10, "Passes over the training split.")
flags.DEFINE_integer("batch_size", 100, "Images per step (divisible by the device count).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Root seed: init, data order, training noise and evaluation.")
flags.DEFINE_integer("steps_per_call", 100, "Steps fused in one jitted call = logging interval.")
flags.DEFINE_integer("eval_k", 5000, "Importance samples per test image for log p(x).")
flags.DEFINE_integer("quadrature_points", 512, "Grid points per axis for 2-D quadrature.")
flags.DEFINE_string("manual_dir", None,
                    f"Folder like ../shared/data for offline tfds preparation "
                    f"(default: ${data_lib.MANUAL_DIR_ENV}).")
flags.DEFINE_string("data_dir", None,
                    f"tfds data dir (default: ${data_lib.DATA_DIR_ENV} or ~/tensorflow_datasets).")


def build_config() -> config_lib.TrainConfig:
  """Flags -> frozen config; raises ConfigError naming the bad value."""
  binarization = FLAGS.binarization
  if binarization == "auto":
    binarization = config_lib.DATASET_BINARIZATIONS[FLAGS.dataset][0]
  likelihood = FLAGS.decoder
  if likelihood == "auto":
    likelihood = "gaussian" if binarization == "none" else "bernoulli"
  hidden = _items("hidden_sizes")
  objective = objective_config(FLAGS.objective)
  model = config_lib.ModelConfig(
      data_dim=datasets.DATASETS[FLAGS.dataset].data_dim, latent_dim=FLAGS.latent_dim,
      hidden_sizes=hidden, activation=FLAGS.activation, likelihood=likelihood,
      encoder=objective.encoder, noise_dim=FLAGS.noise_dim)
  return config_lib.TrainConfig(
      model=model, data=config_lib.DataConfig(dataset=FLAGS.dataset, binarization=binarization),
      objective=objective, batch_size=FLAGS.batch_size,
      learning_rate=FLAGS.learning_rate, epochs=FLAGS.epochs, seed=FLAGS.seed,
      steps_per_call=FLAGS.steps_per_call, eval_k=FLAGS.eval_k,
      quadrature_points=FLAGS.quadrature_points, grad_clip=FLAGS.grad_clip)


def _objective_flags() -> dict[str, list[str]]:
  """Each flag that sets an objective's setting -> the objectives that have it."""
  out = {}
  for name, module in objectives.REGISTRY.items():
    for field in dataclasses.fields(module.Config):
      out.setdefault(FLAG_FOR_SETTING.get(field.name, field.name), []).append(name)
  return out


def objective_config(name: str) -> config_lib.ObjectiveConfig:
  """The objective's config from the flags given on the command line (ConfigError for a
  flag that sets another objective's setting)."""
  settings = {}
  for field in dataclasses.fields(objectives.get(name).Config):
    flag = FLAG_FOR_SETTING.get(field.name, field.name)
    if FLAGS[flag].present:
      settings[field.name] = FLAGS[flag].value
      if typing.get_origin(field.type) is tuple:  # a list flag: its items, converted
        settings[field.name] = _items(flag, typing.get_args(field.type)[0])
  for flag, owners in _objective_flags().items():
    if FLAGS[flag].present and name not in owners:
      names = " and ".join([", ".join(owners[:-1]), owners[-1]] if len(owners) > 1 else owners)
      raise config_lib.ConfigError(f"--{flag} applies to the {names} "
                                   f"objective{'s' if len(owners) > 1 else ''} only, not {name}")
  return config_lib.objective_config(name, **settings)


def _define_remaining_objective_flags():
  """A flag, named after the setting and typed by its field, for every objective setting
  no flag above sets: a new objective's settings are command-line flags without an edit
  here. A setting whose name is a run flag's (--seed, ...) is refused: rename it or map
  it to another flag name in FLAG_FOR_SETTING."""
  for name, module in objectives.REGISTRY.items():
    for field in dataclasses.fields(module.Config):
      flag = FLAG_FOR_SETTING.get(field.name, field.name)
      if flag in FLAGS:
        if flag not in OBJECTIVE_FLAGS:
          raise ValueError(f"{name}'s setting {field.name} has the name of the run flag "
                           f"--{flag}; map it to another flag name in FLAG_FOR_SETTING")
        continue
      help_text = f"{name}: the {field.name} setting (default {field.default})."
      kind = typing.get_origin(field.type) or field.type
      if kind is tuple:
        flags.DEFINE_list(flag, [str(v) for v in field.default], help_text)
      else:
        define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
                  float: flags.DEFINE_float, str: flags.DEFINE_string}[kind]
        define(flag, field.default, help_text)


_define_remaining_objective_flags()


KIND_NAMES = {int: "integers", float: "numbers", str: "strings"}


def _items(name: str, kind: type = int) -> tuple:
  try:
    return tuple(kind(h) for h in FLAGS[name].value)
  except ValueError as e:
    raise config_lib.ConfigError(
        f"{name} must be {KIND_NAMES.get(kind, kind.__name__)}, got {FLAGS[name].value}") from e


def main(argv):
  del argv
  trainer.run(build_config(), FLAGS.workdir, data_dir=FLAGS.data_dir,
              manual_dir=FLAGS.manual_dir, log=lambda line: print(line, flush=True))


if __name__ == "__main__":
  common.run(main)
