r"""Trains a VAE, evaluates it on the test split and writes figures.

    python -m experiments.train --workdir=/tmp/vbayes/vae2d --manual_dir=../shared/data

Defaults: binarized MNIST (Larochelle's fixed binarization), 784-500-500-2
encoder and mirror decoder (ReLU), Bernoulli decoder, ELBO with analytic KL,
Adam 1e-3, batch 100, 10 epochs (5000 steps), test NLL with k=5000 importance
samples plus grid quadrature (2-D latents). On a 2-core CPU: about 20 s of
training (1.7 s per epoch) and 4-5 minutes of k=5000 evaluation. The README
gives the measured results of 100-epoch runs, --config=vae_2d and vae_50d (2-D:
127.7 nats by quadrature).
Other objectives: --objective=iwae --k=50 --estimator=dreg, --objective=prior_is,
--objective=avb [--adaptive_contrast] (adversarial variational Bayes), and any other
in vbayes/objectives/. Each objective's settings are flags of their names (its
Config's fields); a flag of another objective's setting is an error.

--config=NAME starts from a study's config (experiments/configs/, e.g. vae_50d);
the flags given on the command line then set their fields, and --set=path=value
any field (--set=model.min_scale=0.05).

Re-running with the same --workdir resumes from its last checkpoint.

Several processes (hosts, or GPUs): start the same command in each, adding
--num_processes=N --process_id=i --coordinator_address=HOST:PORT (process 0's host), or
--num_processes=auto on a Cloud TPU pod slice or a SLURM allocation. The batch is split
over every device of every process; process 0 writes the workdir (a folder all of them
see) and the others take part in its checkpoints.
"""

from absl import flags

import dataclasses
import typing

from experiments import common, configs
from vbayes import config as config_lib
from vbayes import objectives, overrides, parts
from vbayes.models import ModelConfig
from vbayes.training import loop as training_loop
from vbayes.objectives import elbo, iwae

FLAGS = flags.FLAGS
common.define_config_flags(None)
common.define_process_flags()
flags.DEFINE_string("workdir", None, "Folder for config, metrics, checkpoints and figures.",
                    required=True)
flags.DEFINE_enum("dataset", "binarized_mnist", config_lib.DATASETS, "Dataset.")
flags.DEFINE_enum("binarization", "auto", ("auto", *config_lib.BINARIZATIONS),
                  "auto: fixed for binarized_mnist and 4frames, dynamic for mnist.")
flags.DEFINE_enum("decoder", "auto", ("auto", *parts.registry("likelihood")),
                  "The likelihood p(x|z) on the decoder's output (vbayes/models/likelihoods/). "
                  "auto: gaussian for --binarization=none, else bernoulli.")
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
flags.DEFINE_integer("kl_warmup_steps", 0, "elbo, avb: the KL weight rises linearly to 1 over "
                     "this many steps (0: no warm-up).")
FLAG_FOR_SETTING = {"samples": "avb_samples", "moment_samples": "avb_moment_samples"}
OBJECTIVE_FLAGS = ("k", "estimator", "kl_estimator", "adaptive_contrast", "avb_samples",
                   "avb_moment_samples", "adversary_hidden_sizes", "adversary_learning_rate",
                   "adversary_steps", "kl_warmup_steps")
flags.DEFINE_float("grad_clip", 0.0, "Clip gradients to this global norm (0: no clipping).")
flags.DEFINE_integer("latent_dim", ModelConfig().latent_dim, "Latent dimension L (of z1, "
                     "under a prior of several stochastic layers).")
flags.DEFINE_enum("network", ModelConfig().network.name, tuple(parts.registry("network")),
                  "Encoder and decoder networks (vbayes/models/networks/): MLPs, Tomczak & "
                  "Welling's gated layers, or conv nets for square images.")
flags.DEFINE_enum("prior", ModelConfig().prior.name, tuple(parts.registry("prior")),
                  "p(z) (vbayes/models/priors/): N(0, I), the VampPrior, a learned mixture of "
                  "Gaussians, or two stochastic layers.")
flags.DEFINE_enum("proposal", ModelConfig().proposal.name, tuple(parts.registry("proposal")),
                  "q(z|x) (vbayes/models/proposals/); by default the one the objective trains.")
flags.DEFINE_enum("flow", "none", ("none", "iaf"), "iaf: --proposal=iaf, the inverse "
                  "autoregressive flow after the Gaussian encoder (Kingma et al. 2016).")
flags.DEFINE_integer("latent_dim_2", 0, "Units of a second stochastic layer z2 above z1 "
                     "(0: one layer): --prior=two_layer with that latent_dim_2.")
flags.DEFINE_integer("epochs", 10, "Passes over the training split.")
flags.DEFINE_integer("batch_size", 100, "Images per step (divisible by the device count).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Root seed: init, data order, training noise and evaluation.")
flags.DEFINE_integer("steps_per_call", 100, "Steps fused in one jitted call = logging interval.")
flags.DEFINE_integer("eval_k", 5000, "Importance samples per test image for log p(x).")
flags.DEFINE_enum("validation", "auto", config_lib.VALIDATIONS,
                  "Held-out images for the validation curve and the best checkpoint: split "
                  "(binarized_mnist's 10000), holdout (the last 10000 training images, left "
                  "out of training), none; auto: split where the dataset has one, else none.")
flags.DEFINE_integer("validation_is_k", 100, "Importance samples per validation image of the "
                     "IS bound in the validation curve.")
flags.DEFINE_integer("validation_is_every_epochs", 10, "Epochs between the validation curve's "
                     "IS bounds (its ELBO is at every epoch); 0: never.")
flags.DEFINE_integer("quadrature_points", 512, "Grid points per axis for 2-D quadrature.")
common.define_data_flags()
flags.adopt_module_key_flags(common)  # --help shows the data, process and config flags


# Run flags: each sets the config fields named here when given on the command line.
SHORTHANDS = {
    "dataset": ("data.dataset",), "binarization": ("data.binarization",),
    "decoder": ("model.likelihood",), "objective": ("objective",),
    "latent_dim": ("model.latent_dim",), "network": ("model.network",),
    "prior": ("model.prior",), "proposal": ("model.proposal",), "flow": ("model.flow",),
    "latent_dim_2": ("model.latent_dim_2",),
    "epochs": ("epochs",), "batch_size": ("batch_size",), "learning_rate": ("learning_rate",),
    "seed": ("seed",), "steps_per_call": ("steps_per_call",), "eval_k": ("eval_k",),
    "quadrature_points": ("quadrature_points",), "grad_clip": ("grad_clip",),
    "validation": ("data.validation",), "validation_is_k": ("validation_is_k",),
    "validation_is_every_epochs": ("validation_is_every_epochs",)}


def build_config() -> config_lib.TrainConfig:
  """--config (or TrainConfig's defaults), the flags given, then --set; raises
  ConfigError naming the bad value."""
  shorthands = {flag: paths for flag, paths in {**SHORTHANDS, **PART_SETTING_FLAGS}.items()
                if FLAGS[flag].value != "auto"}  # auto: follow the dataset / binarization
  start = configs.load(FLAGS.config) if FLAGS.config else config_lib.TrainConfig()
  if isinstance(start, config_lib.Study):
    raise config_lib.ConfigError(
        f"--config={FLAGS.config} is a study of several runs "
        f"({', '.join(name for name, _ in start.runs)}): run it with its own script")
  return common.config_from_flags(shorthands, extra=objective_settings(objective_name(start)))


def objective_name(start: config_lib.TrainConfig) -> str:
  """The objective the run will train: the last --set=objective=..., else --objective,
  else the one of `start`, the --config's config."""
  for assignment in reversed(FLAGS.set):
    path, text = overrides.parse_assignment(assignment)
    if path == "objective":
      return text
  if FLAGS["objective"].present:
    return FLAGS.objective
  return start.objective.name


def _objective_flags() -> dict[str, list[str]]:
  """Each flag that sets an objective's setting -> the objectives that have it."""
  out = {}
  for name, module in objectives.REGISTRY.items():
    for field in dataclasses.fields(module.Config):
      out.setdefault(FLAG_FOR_SETTING.get(field.name, field.name), []).append(name)
  return out


def objective_settings(name: str) -> dict[str, str]:
  """The objective's settings given as flags on the command line, as config overrides
  (ConfigError for a flag that sets another objective's setting)."""
  settings = {}
  for field in dataclasses.fields(objectives.get(name).Config):
    flag = FLAG_FOR_SETTING.get(field.name, field.name)
    if FLAGS[flag].present:
      settings[f"objective.{field.name}"] = common.flag_text(flag)
  for flag, owners in _objective_flags().items():
    if FLAGS[flag].present and name not in owners:
      names = " and ".join([", ".join(owners[:-1]), owners[-1]] if len(owners) > 1 else owners)
      raise config_lib.ConfigError(f"--{flag} applies to the {names} "
                                   f"objective{'s' if len(owners) > 1 else ''} only, not {name}")
  return settings


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
      _define_setting_flag(flag, module.Config, field,
                           f"{name}: the {field.name} setting (default {field.default}).")


def _define_setting_flag(flag: str, config_cls: type, field: dataclasses.Field, help_text: str):
  """--flag, typed as `field` of the dataclass `config_cls` (a tuple: a list flag)."""
  kind = parts.field_type(config_cls, field.name)
  kind = typing.get_origin(kind) or kind
  if kind is tuple:
    flags.DEFINE_list(flag, [str(v) for v in field.default], help_text)
  else:
    define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
              float: flags.DEFINE_float, str: flags.DEFINE_string}[kind]
    define(flag, field.default, help_text)


_define_remaining_objective_flags()


def _define_part_setting_flags() -> dict[str, tuple[str]]:
  """A flag, named after the setting and typed by its field, for every setting of every
  registered part (vbayes.parts): --hidden_sizes sets model.hidden_sizes, the setting of
  each of the model's parts that has it (an error if none does). Returns flag -> path."""
  owners = {}
  for family in parts.FAMILIES:
    for name, cls in parts.registry(family).items():
      for field in parts.settings_of(cls).values():
        owners.setdefault(field.name, []).append((f"{family} {name}", cls, field))
  paths = {}
  for setting, having in owners.items():
    if setting in FLAGS:  # a flag of its own above (--latent_dim_2)
      continue
    _, cls, field = having[0]
    _define_setting_flag(setting, cls, field, f"Model part setting: the {setting} of the "
                         f"model's {', '.join(owner for owner, _, _ in having)} (whichever it "
                         "has).")
    paths[setting] = (f"model.{setting}",)
  return paths


PART_SETTING_FLAGS = _define_part_setting_flags()


def main(argv):
  del argv
  common.start_processes()
  training_loop.run(build_config(), FLAGS.workdir, data_dir=FLAGS.data_dir,
              manual_dir=FLAGS.manual_dir, log=lambda line: print(line, flush=True))


if __name__ == "__main__":
  common.run(main)
