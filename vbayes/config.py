"""Frozen, hashable configs: built by experiments/ from flags, passed to the library.

Nothing under vbayes/ reads flags; every function takes one of these (or plain
arguments). Being frozen dataclasses they can be static arguments to `jax.jit`.
"""

import dataclasses
import json
import math
from typing import Any

from vbayes import datasets, objectives
from vbayes.errors import ConfigError, positive_finite, require
from vbayes.models.config import ModelConfig
from vbayes.objectives.base import ObjectiveConfig

DATASETS = tuple(datasets.DATASETS)
BINARIZATIONS = ("fixed", "dynamic", "threshold", "none")

# Which binarizations each dataset allows; the first is its default.
DATASET_BINARIZATIONS = {name: d.binarizations for name, d in datasets.DATASETS.items()}
VALIDATIONS = ("auto", "split", "holdout", "none")
HOLDOUT_IMAGES = 10_000  # validation=holdout: the last this many training images


# Fewest grid points per axis for 2-D quadrature (a cell 0.16 wide on [-5, 5]^2). The
# midpoint rule on much coarser grids misstates log p(x) badly: one point gives the
# prior's whole area times one value, a negative NLL on 4frames.
MIN_QUADRATURE_POINTS = 64
MATMUL_PRECISIONS = ("default", "high", "highest")  # jax.default_matmul_precision's names


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
  """Which tfds dataset (or the generated 4frames) and how pixels become binary.

  binarization: "fixed" (the dataset is binary already), "dynamic" (a fresh
  Bernoulli(x / 255) draw each time an image is used, inside the jitted step),
  "threshold" (x > 127) or "none" (x / 255, for a Gaussian decoder).
  validation, the held-out images that training curves are evaluated on: "split" (the
  dataset's own validation split: binarized_mnist's 10000), "holdout" (the last
  HOLDOUT_IMAGES training images, left out of training), "none", or "auto": split
  where the dataset has one, else none (mnist trains on all 60000, as Burda et al.).
  """
  dataset: str = "binarized_mnist"
  binarization: str = "fixed"
  validation: str = "auto"

  def __post_init__(self):
    require(self.dataset in DATASETS,
             f"unknown dataset {self.dataset!r}: choose one of {DATASETS}")
    allowed = DATASET_BINARIZATIONS[self.dataset]
    require(self.binarization in allowed,
             f"binarization {self.binarization!r} does not apply to dataset "
             f"{self.dataset!r}: choose one of {allowed}")
    require(self.validation in VALIDATIONS,
            f"unknown validation {self.validation!r}: choose one of {VALIDATIONS}")
    require(self.validation != "split" or datasets.DATASETS[self.dataset].validation_split,
            f"dataset {self.dataset!r} has no validation split: use validation=holdout "
            f"(its last {HOLDOUT_IMAGES} training images) or none")
    require(self.validation != "holdout" or self.dataset != "4frames",
            "4frames has four images, none to hold out: use validation=none")

  @property
  def validation_source(self) -> str:
    """"split", "holdout" or "none": what "auto" means for this dataset."""
    if self.validation != "auto":
      return self.validation
    return "split" if datasets.DATASETS[self.dataset].validation_split else "none"


def objective_configs() -> dict[str, type]:
  """Every registered objective's config class, by name."""
  return {name: module.Config for name, module in objectives.REGISTRY.items()}


def objective_config(name: str, **settings) -> ObjectiveConfig:
  """The config of the objective called `name`, with its defaults or `settings`."""
  configs = objective_configs()
  require(name in configs, f"unknown objective {name!r}: choose one of {tuple(configs)}")
  cls = configs[name]
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(settings) - fields)
  require(not unknown, f"objective {name!r} has no setting {', '.join(unknown)}: its settings "
          f"are {', '.join(sorted(fields)) or 'none'}")
  return cls(**settings)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
  """Everything that determines a training run's trajectory, plus its length.

  objective: an objective's Config (vbayes/objectives/), or its name for its
  defaults. Adam runs at learning_rate, or in learning_rate_stages ((epochs,
  multiplier), ...): learning_rate * multiplier for that many epochs each, the last
  multiplier after them (vbayes.optimizers.staged_learning_rate); adam_eps is its
  epsilon. eval_proposal_samples: encoder samples of an implicit encoder for the
  Gaussian proposal of the test log-likelihood. At every checkpoint a run with
  validation images (data.validation) records their ELBO and every
  validation_is_every_epochs epochs (0: never) their IS bound with validation_is_k
  samples. early_stopping_patience > 0 stops training once more than that many epochs
  in a row (from epoch early_stopping_from_epoch on: Tomczak & Welling count none during
  their KL warm-up) end without a new best validation ELBO, and the run is then evaluated at its
  best checkpoint (checkpoints_best/); 0 trains all `epochs`. matmul_precision: the
  training step's matrix products ("highest": float32 on every backend; "default"
  lets TPUs use bfloat16 passes and GPUs TF32; vbayes/precision.py). Evaluation always
  computes at full float32. normalize_gradients divides each tensor's gradient by its
  norm before Adam (vbayes.optimizers.normalize_each_tensor; Tomczak & Welling's code).
  A model left with the default proposal that the objective cannot train takes the one
  the objective trains (prior_is: the prior; avb: the implicit encoder). A run is
  resumable only with the
  same config up to `RUN_LENGTH_FIELDS` (training longer or evaluating differently
  does not change the steps taken).
  """
  model: ModelConfig = ModelConfig()
  data: DataConfig = DataConfig()
  objective: "ObjectiveConfig | str" = "elbo"
  batch_size: int = 100
  learning_rate: float = 1e-3
  epochs: int = 10
  seed: int = 0
  steps_per_call: int = 100
  checkpoint_every_epochs: int = 1
  eval_k: int = 5000
  eval_batch_size: int = 100
  validation_is_k: int = 100
  validation_is_every_epochs: int = 10
  eval_proposal_samples: int = 1000
  quadrature_points: int = 512
  quadrature_limit: float = 5.0
  grad_clip: float = 0.0
  adam_eps: float = 1e-8
  learning_rate_stages: tuple[tuple[int, float], ...] = ()
  early_stopping_patience: int = 0
  early_stopping_from_epoch: int = 0
  matmul_precision: str = "highest"
  normalize_gradients: bool = False

  def __post_init__(self):
    if isinstance(self.objective, str):  # a name: that objective's defaults
      object.__setattr__(self, "objective", objective_config(self.objective))
    require(isinstance(self.objective, ObjectiveConfig),
            f"objective must be an objective's name or config (vbayes.objectives), got "
            f"{self.objective!r}")
    for name in ("batch_size", "epochs", "steps_per_call", "checkpoint_every_epochs",
                 "eval_k", "eval_batch_size", "eval_proposal_samples", "quadrature_points",
                 "validation_is_k"):
      value = getattr(self, name)
      require(value > 0, f"{name} must be positive, got {value}")
    require(self.validation_is_every_epochs >= 0, "validation_is_every_epochs must be 0 "
            f"(never) or positive, got {self.validation_is_every_epochs}")
    require(0 <= self.seed < 2**32,
            f"seed must be in [0, 2^32), got {self.seed}: a JAX key holds 32 bits of seed "
            "here, so larger or negative seeds would repeat smaller ones")
    require(positive_finite(self.learning_rate),
            f"learning_rate must be positive and finite, got {self.learning_rate}")
    require(positive_finite(self.quadrature_limit),
            f"quadrature_limit must be positive and finite, got {self.quadrature_limit}")
    require(self.quadrature_points >= MIN_QUADRATURE_POINTS,
            f"quadrature_points must be at least {MIN_QUADRATURE_POINTS} per axis, got "
            f"{self.quadrature_points}: coarser grids misstate log p(x) by nats (the "
            "README's numbers use 512)")
    require(positive_finite(self.adam_eps), f"adam_eps must be positive and finite, got "
            f"{self.adam_eps}")
    stages = self.learning_rate_stages
    require(all(len(s) == 2 and isinstance(s[0], int) and s[0] > 0 and positive_finite(s[1])
                for s in stages),
            f"learning_rate_stages are (epochs > 0, an integer; multiplier > 0) pairs, got "
            f"{stages}")
    object.__setattr__(self, "learning_rate_stages",
                       tuple((int(epochs), float(m)) for epochs, m in stages))
    require(self.matmul_precision in MATMUL_PRECISIONS, f"matmul_precision must be one of "
            f"{MATMUL_PRECISIONS}, got {self.matmul_precision!r}")
    for name in ("early_stopping_patience", "early_stopping_from_epoch"):
      require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
    require(self.grad_clip >= 0 and math.isfinite(self.grad_clip),
            f"grad_clip must be >= 0 and finite, got {self.grad_clip}")
    if not self.objective.fits(self.model) and self.model.proposal == ModelConfig().proposal:
      # the default proposal: the one this objective trains instead (prior_is: the prior)
      object.__setattr__(self, "model", self.model.with_part("proposal",
                                                             self.objective.proposal))
    self.objective.check_needs(self.model)
    self.objective.check_model(self.model)
    binary = self.data.binarization != "none"
    require(binary == (self.model.likelihood.pixels == "binary"),
            f"likelihood {self.model.likelihood.name!r} models {self.model.likelihood.pixels} "
            f"pixels, which do not fit binarization {self.data.binarization!r}: use bernoulli "
            "for binary pixels and gaussian or continuous_bernoulli for grey ones "
            "(binarization none)")

  def replace_objective(self, objective: "ObjectiveConfig | str") -> "TrainConfig":
    """This config trained by another objective, with the proposal that objective trains
    (the model's own where it fits the objective)."""
    if isinstance(objective, str):
      objective = objective_config(objective)
    model = self.model
    if not objective.fits(model):
      model = model.with_part("proposal", objective.proposal)
    return dataclasses.replace(self, objective=objective, model=model)

  def to_dict(self) -> dict[str, Any]:
    d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    d.update(model=self.model.to_dict(), data=dataclasses.asdict(self.data),
             objective=self.objective.to_dict())
    return d

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
    d = dict(d)
    model = d.pop("model")
    d["learning_rate_stages"] = tuple(tuple(s) for s in d.get("learning_rate_stages", ()))
    objective = d.pop("objective", "elbo")
    if isinstance(objective, str):  # written before each objective had its own config
      objective, d = _flat_objective(objective, d)
    objective = dict(objective)
    name = objective.pop("name")
    settings_cls = objective_configs().get(name)
    for field in dataclasses.fields(settings_cls) if settings_cls else ():
      if isinstance(objective.get(field.name), list):  # JSON has no tuples
        objective[field.name] = tuple(objective[field.name])
    if name == "avb" and "activation" in model:  # the flat model's activation was T(x, z)'s
      objective.setdefault("adversary_activation", model["activation"])
    return cls(model=ModelConfig.from_dict(model), data=DataConfig(**d.pop("data")),
               objective=objective_config(name, **objective), **d)


def _flat_objective(name: str, d: dict[str, Any]):
  """config.json before per-objective configs: the objective's settings sat beside the
  run's (k, estimator, kl_estimator, kl_warmup_steps and an "avb" dict). Returns the
  objective's settings as a dict with its name, and the rest."""
  d = dict(d)
  flat = {key: d.pop(key) for key in ("k", "estimator", "kl_estimator", "kl_warmup_steps")
          if key in d}
  avb = dict(d.pop("avb", {}))
  if "eval_proposal_samples" in avb:
    d.setdefault("eval_proposal_samples", avb.pop("eval_proposal_samples"))
  if name == "elbo":
    return {"name": name, "kl_estimator": flat.get("kl_estimator", "analytic")}, d
  if name == "iwae":
    return {"name": name, "k": flat.get("k", 1), "estimator": flat.get("estimator", "reparam")}, d
  if name == "prior_is":
    return {"name": name, "k": flat.get("k", 1)}, d
  if avb.get("adaptive_contrast"):  # written before moment_samples existed: adaptive
    avb.setdefault("moment_samples", 0)  # contrast took the moments of the K samples
  return {"name": name, **avb, "kl_warmup_steps": flat.get("kl_warmup_steps", 0)}, d


# Fields that may change between a run and its resumption.
RUN_LENGTH_FIELDS = ("epochs", "eval_k", "eval_batch_size", "eval_proposal_samples",
                     "quadrature_points", "quadrature_limit", "checkpoint_every_epochs",
                     "validation_is_k", "validation_is_every_epochs",
                     "early_stopping_patience", "early_stopping_from_epoch")


def trajectory_fields(config: TrainConfig) -> dict[str, Any]:
  """The config without the fields a resumed run may change, nor those its objective
  does not read (ObjectiveConfig.trajectory_dict)."""
  d = config.to_dict()
  for name in RUN_LENGTH_FIELDS:
    d.pop(name)
  d["objective"] = config.objective.trajectory_dict()
  return d


@dataclasses.dataclass(frozen=True, kw_only=True)
class Study:
  """Several training runs compared in one study: (name, TrainConfig) pairs, each
  trained once per seed (the seed replaces its config's)."""
  runs: tuple[tuple[str, TrainConfig], ...]
  seeds: tuple[int, ...] = (0,)

  def __post_init__(self):
    names = [name for name, _ in self.runs]
    require(bool(names) and len(set(names)) == len(names),
            f"a study's runs need distinct names, got {names}")
    require(bool(self.seeds), "a study needs at least one seed")
    for name, config in self.runs:
      require(isinstance(config, TrainConfig), f"run {name!r} is not a TrainConfig")

  def configs(self) -> dict[tuple[str, int], TrainConfig]:
    """(run name, seed) -> the run's config with that seed."""
    return {(name, seed): dataclasses.replace(config, seed=seed)
            for name, config in self.runs for seed in self.seeds}

  def run(self, name: str) -> TrainConfig:
    return dict(self.runs)[name]

  def select(self, names) -> "Study":
    """The study with only the runs in `names` (ConfigError naming unknown ones)."""
    known = [name for name, _ in self.runs]
    unknown = sorted(set(names) - set(known))
    require(not unknown and bool(names),
            f"this study's runs are {', '.join(known)}; got {', '.join(names) or 'none'}")
    return dataclasses.replace(self, runs=tuple(r for r in self.runs if r[0] in names))
