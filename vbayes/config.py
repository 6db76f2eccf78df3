"""Frozen, hashable configs: built by experiments/ from flags, passed to the library.

Nothing under vbayes/ reads flags; every function takes one of these (or plain
arguments). Being frozen dataclasses they can be static arguments to `jax.jit`.
"""

import dataclasses
import json
import math
from typing import Any, ClassVar

from vbayes import datasets
from vbayes.errors import UserError

DATASETS = tuple(datasets.DATASETS)
BINARIZATIONS = ("fixed", "dynamic", "threshold", "none")
LIKELIHOODS = ("bernoulli", "gaussian")
ACTIVATIONS = ("relu", "tanh", "softplus", "elu", "gelu")
ENCODERS = ("gaussian", "implicit", "none")
PRIORS = ("standard_normal", "vamp")
NETWORKS = ("mlp", "conv", "gated")
FLOWS = ("none", "iaf")

# Which binarizations each dataset allows; the first is its default.
DATASET_BINARIZATIONS = {name: d.binarizations for name, d in datasets.DATASETS.items()}
VALIDATIONS = ("auto", "split", "holdout", "none")
HOLDOUT_IMAGES = 10_000  # validation=holdout: the last this many training images


class ConfigError(UserError, ValueError):
  """A config value that cannot work; the message names the field."""


def require(condition: bool, message: str):
  """ConfigError(message) unless `condition`: the check every config field makes."""
  if not condition:
    raise ConfigError(message)


def positive_finite(value: float) -> bool:
  return value > 0 and math.isfinite(value)


# Fewest grid points per axis for 2-D quadrature (a cell 0.16 wide on [-5, 5]^2). The
# midpoint rule on much coarser grids misstates log p(x) badly: one point gives the
# prior's whole area times one value, a negative NLL on 4frames.
MIN_QUADRATURE_POINTS = 64
MATMUL_PRECISIONS = ("default", "high", "highest")  # jax.default_matmul_precision's names


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
  """Encoder q(z|x) = N(mu(x), diag sigma^2(x)), prior N(0, I), decoder p(x|z).

  Defaults: a 784-500-500-L MLP encoder and its mirror as decoder, ReLU.
  likelihood: "bernoulli" (binary pixels, logits out) or "gaussian" (grey pixels:
  mean sigmoid(h), or h itself with gaussian_mean="identity"; one learned scale
  per pixel, at least `min_scale`). hidden_sizes=() makes both networks linear.
  encoder: "gaussian" (the above), "implicit" for AVB: z = g(x, eps) with
  eps ~ N(0, I) of noise_dim dimensions (0: latent_dim) as an extra input, or
  "none" (the decoder alone, the prior as proposal: prior importance sampling).
  prior: "standard_normal" (N(0, I)) or "vamp", the VampPrior (Tomczak & Welling
  2018): the mixture of the Gaussian encoder's q(z | u_k) at num_pseudo_inputs
  learned pseudo-inputs u_k; it has no closed-form KL with q. They start at
  pseudo_input_init = (mean, sd): mean + sd * eps, eps ~ N(0, I); with
  pseudo_input_limits = (lo, hi) the prior sees them clipped to [lo, hi] (hardtanh, as
  Tomczak & Welling keep theirs in [0, 1]); () leaves them free.
  log_var_limits = (lo, hi) clips the Gaussian encoder's log-variance to [lo, hi]
  (Tomczak & Welling's [-6, 2]); () leaves it free.
  network: "mlp", "gated" (Tomczak & Welling's gated dense layers,
  h = (W1 x + b1) * sigmoid(W2 x + b2), He-normal weights; `activation` unused), or
  "conv" for square images (vbayes/models/conv_nets.py): a 3x3
  convolution of stride 2 per entry of conv_channels, then dense layers of
  hidden_sizes, in the encoder; the mirror, with transposed convolutions, in the
  decoder.
  latent_dim_2 > 0 adds a second stochastic layer z2 above z1 (latent_dim units)
  (vbayes/models/hierarchical.py): p(z2) p(z1|z2) p(x|z1) and q(z1|x) q(z2|z1), the
  conditionals between z1 and z2 MLPs of hidden_sizes_2. Burda et al.'s (2016) two-layer
  model: hidden_sizes (200, 200), latent_dim 100, hidden_sizes_2 (100, 100),
  latent_dim_2 50, tanh.
  flow: "iaf" puts flow_steps inverse autoregressive flow steps (MADEs of
  flow_hidden_sizes, vbayes/models/flows.py) after the Gaussian encoder.
  """
  data_dim: int = 784
  latent_dim: int = 2
  hidden_sizes: tuple[int, ...] = (500, 500)
  activation: str = "relu"
  likelihood: str = "bernoulli"
  min_scale: float = 0.01
  gaussian_mean: str = "sigmoid"
  encoder: str = "gaussian"
  noise_dim: int = 0
  prior: str = "standard_normal"
  num_pseudo_inputs: int = 500
  pseudo_input_init: tuple[float, float] = (0.5, 0.1)
  pseudo_input_limits: tuple[float, ...] = ()
  log_var_limits: tuple[float, ...] = ()
  network: str = "mlp"
  conv_channels: tuple[int, ...] = (32, 64)
  latent_dim_2: int = 0
  hidden_sizes_2: tuple[int, ...] = (100, 100)
  flow: str = "none"
  flow_steps: int = 2
  flow_hidden_sizes: tuple[int, ...] = (200, 200)

  @property
  def closed_form_kl(self) -> bool:
    """Whether KL(q(z|x) || p(z)) has a closed form (vbayes.distributions.kl_divergence)."""
    return self.without_closed_form_kl is None

  @property
  def without_closed_form_kl(self) -> str | None:
    """What makes KL(q(z|x) || p(z)) lack a closed form, in words; None if it has one."""
    if self.prior != "standard_normal":
      return f"the {self.prior} prior"
    if self.latent_dim_2:
      return "two stochastic layers"
    if self.flow != "none":
      return f"the {self.flow} posterior"
    return None

  @property
  def latent_layers(self) -> tuple[int, ...]:
    """The units of each stochastic layer, z1 first: z = [z1, z2] has their sum."""
    return (self.latent_dim, self.latent_dim_2) if self.latent_dim_2 else (self.latent_dim,)

  @property
  def noise_dim_or_latent(self) -> int:
    return self.noise_dim or self.latent_dim

  def __post_init__(self):
    require(self.data_dim > 0, f"data_dim must be positive, got {self.data_dim}")
    require(self.latent_dim > 0, f"latent_dim must be positive, got {self.latent_dim}")
    require(all(h > 0 for h in self.hidden_sizes),
             f"hidden_sizes must all be positive, got {self.hidden_sizes}")
    require(self.activation in ACTIVATIONS,
             f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
    require(self.likelihood in LIKELIHOODS,
             f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
    require(self.min_scale > 0, f"min_scale must be positive, got {self.min_scale}")
    require(self.encoder in ENCODERS,
             f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
    require(self.noise_dim >= 0, f"noise_dim must be >= 0, got {self.noise_dim}")
    require(self.prior in PRIORS, f"prior must be one of {PRIORS}, got {self.prior!r}")
    require(self.num_pseudo_inputs > 0,
            f"num_pseudo_inputs must be positive, got {self.num_pseudo_inputs}")
    require(len(self.pseudo_input_init) == 2 and self.pseudo_input_init[1] >= 0
            and all(math.isfinite(v) for v in self.pseudo_input_init),
            f"pseudo_input_init is (mean, sd >= 0), got {self.pseudo_input_init}")
    for name in ("pseudo_input_limits", "log_var_limits"):
      limits = getattr(self, name)
      require(limits == () or (len(limits) == 2 and limits[0] < limits[1]),
              f"{name} is () or (lo, hi) with lo < hi, got {limits}")
    require(not self.log_var_limits or (self.encoder == "gaussian" and not self.latent_dim_2
                                        and self.flow == "none"),
            "log_var_limits clip the one-layer Gaussian encoder's log-variance; use "
            "log_var_limits () with another encoder, two layers or a flow")
    require(self.prior == "standard_normal" or self.encoder == "gaussian",
            f"the {self.prior} prior is made of the Gaussian encoder's posteriors; it needs "
            f"encoder gaussian, got {self.encoder!r}")
    require(self.network in NETWORKS, f"network must be one of {NETWORKS}, got {self.network!r}")
    if self.network == "conv":
      side = math.isqrt(self.data_dim)
      halvings = len(self.conv_channels)
      require(halvings > 0 and all(c > 0 for c in self.conv_channels),
              f"conv_channels must be positive and at least one, got {self.conv_channels}")
      require(side * side == self.data_dim and side % 2**halvings == 0,
              f"a conv network takes square images whose side halves {halvings} times "
              f"(one per conv_channels entry); data_dim {self.data_dim} is not one")
      require(self.encoder != "implicit", "the implicit encoder is an MLP; use network mlp")
    require(self.latent_dim_2 >= 0, f"latent_dim_2 must be >= 0, got {self.latent_dim_2}")
    require(all(h > 0 for h in self.hidden_sizes_2),
            f"hidden_sizes_2 must all be positive, got {self.hidden_sizes_2}")
    if self.latent_dim_2:
      require(self.prior == "standard_normal",
              f"two stochastic layers have their own prior p(z2) p(z1|z2); prior "
              f"{self.prior!r} is for one layer (use prior standard_normal)")
      require(self.encoder != "implicit",
              "the implicit encoder has one stochastic layer; use latent_dim_2 0")
    require(self.flow in FLOWS, f"flow must be one of {FLOWS}, got {self.flow!r}")
    require(self.flow_steps > 0, f"flow_steps must be positive, got {self.flow_steps}")
    require(bool(self.flow_hidden_sizes) and all(h > 0 for h in self.flow_hidden_sizes),
            f"flow_hidden_sizes must be positive and at least one, got "
            f"{self.flow_hidden_sizes}")
    if self.flow != "none":
      require(self.encoder == "gaussian",
              f"a flow transforms the Gaussian encoder's samples; it needs encoder gaussian, "
              f"got {self.encoder!r}")
      require(not self.latent_dim_2 and self.prior == "standard_normal",
              "a flow posterior is built here for one stochastic layer under the N(0, I) "
              "prior: use latent_dim_2 0 and prior standard_normal")
    require(self.gaussian_mean in ("sigmoid", "identity"),
             f"gaussian_mean must be sigmoid or identity, got {self.gaussian_mean!r}")


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


class ObjectiveConfig:
  """The base of every objective's settings: a frozen, kw_only dataclass in the
  objective's module (vbayes/objectives/), with class attributes `name` (its key in
  the registry and in config.json) and `encoder` (the ModelConfig.encoder it trains).
  Subclasses register themselves by name when their module is imported."""
  name: ClassVar[str]
  encoder: ClassVar[str]
  by_name: ClassVar[dict[str, type]] = {}

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if "name" not in cls.__dict__:  # a subclass of an objective's Config is not another one
      return
    known = ObjectiveConfig.by_name.get(cls.name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__,
                                                                       cls.__qualname__):
      raise ValueError(f"objective name {cls.name!r} is taken by {known.__module__}")
    ObjectiveConfig.by_name[cls.name] = cls

  def to_dict(self) -> dict[str, Any]:
    return {"name": self.name, **dataclasses.asdict(self)}

  def replace(self, **settings) -> "ObjectiveConfig":
    return dataclasses.replace(self, **settings)

  def trajectory_dict(self) -> dict[str, Any]:
    """The settings that shape a run's steps (all, unless an objective says otherwise)."""
    return self.to_dict()

  def check_model(self, model: "ModelConfig"):
    """ConfigError if this objective cannot train `model` (by default it can)."""


def objective_configs() -> dict[str, type]:
  """Every registered objective's config class, by name."""
  import vbayes.objectives  # pylint: disable=import-outside-toplevel,unused-import
  return ObjectiveConfig.by_name


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
  A run is resumable only with the
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
    encoder = self.objective.encoder
    if encoder == "none" and self.model.encoder == "gaussian":  # the default: an objective
      # that trains the decoder alone has no encoder (configs written before encoder
      # "none" existed said so implicitly)
      object.__setattr__(self, "model", dataclasses.replace(self.model, encoder="none"))
    require(self.model.encoder == encoder,
            f"objective {self.objective.name!r} trains the {encoder!r} encoder, got "
            f"{self.model.encoder!r}")
    self.objective.check_model(self.model)
    binary = self.data.binarization != "none"
    require(binary == (self.model.likelihood == "bernoulli"),
             f"likelihood {self.model.likelihood!r} does not fit binarization "
             f"{self.data.binarization!r}: use bernoulli for binary pixels and "
             "gaussian for grey ones (binarization none)")

  def replace_objective(self, objective: "ObjectiveConfig | str") -> "TrainConfig":
    """This config trained by another objective, with the encoder that objective trains."""
    if isinstance(objective, str):
      objective = objective_config(objective)
    return dataclasses.replace(self, objective=objective,
                               model=dataclasses.replace(self.model, encoder=objective.encoder))

  def to_dict(self) -> dict[str, Any]:
    d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    d.update(model=dataclasses.asdict(self.model), data=dataclasses.asdict(self.data),
             objective=self.objective.to_dict())
    return d

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
    d = dict(d)
    model = {name: tuple(value) if isinstance(value, list) else value  # JSON has no tuples
             for name, value in d.pop("model").items()}
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
    return cls(model=ModelConfig(**model), data=DataConfig(**d.pop("data")),
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
