"""Frozen, hashable configs: built by experiments/ from flags, passed to the library.

Nothing under vbayes/ reads flags; every function takes one of these (or plain
arguments). Being frozen dataclasses they can be static arguments to `jax.jit`.
"""

import dataclasses
import json
import math
from typing import Any

from vbayes.errors import UserError

DATASETS = ("binarized_mnist", "mnist", "4frames")
BINARIZATIONS = ("fixed", "dynamic", "threshold", "none")
LIKELIHOODS = ("bernoulli", "gaussian")
ACTIVATIONS = ("relu", "tanh", "softplus", "elu", "gelu")
OBJECTIVES = ("elbo", "iwae", "prior_is", "avb")
ENCODERS = ("gaussian", "implicit", "none")
# The encoder each objective trains.
OBJECTIVE_ENCODERS = {"elbo": "gaussian", "iwae": "gaussian", "prior_is": "none", "avb": "implicit"}
ESTIMATORS = ("reparam", "stl", "dreg")
KL_ESTIMATORS = ("analytic", "mc")

# Which binarizations each dataset allows; the first is its default.
DATASET_BINARIZATIONS = {
    "binarized_mnist": ("fixed",),
    "4frames": ("fixed",),
    "mnist": ("dynamic", "threshold", "none"),
}


class ConfigError(UserError, ValueError):
  """A config value that cannot work; the message names the field."""


def _require(condition: bool, message: str):
  if not condition:
    raise ConfigError(message)


def _positive_finite(value: float) -> bool:
  return value > 0 and math.isfinite(value)


# Fewest grid points per axis for 2-D quadrature (a cell 0.16 wide on [-5, 5]^2). The
# midpoint rule on much coarser grids misstates log p(x) badly: one point gives the
# prior's whole area times one value, a negative NLL on 4frames.
MIN_QUADRATURE_POINTS = 64


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

  @property
  def noise_dim_or_latent(self) -> int:
    return self.noise_dim or self.latent_dim

  def __post_init__(self):
    _require(self.data_dim > 0, f"data_dim must be positive, got {self.data_dim}")
    _require(self.latent_dim > 0, f"latent_dim must be positive, got {self.latent_dim}")
    _require(all(h > 0 for h in self.hidden_sizes),
             f"hidden_sizes must all be positive, got {self.hidden_sizes}")
    _require(self.activation in ACTIVATIONS,
             f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
    _require(self.likelihood in LIKELIHOODS,
             f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
    _require(self.min_scale > 0, f"min_scale must be positive, got {self.min_scale}")
    _require(self.encoder in ENCODERS,
             f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
    _require(self.noise_dim >= 0, f"noise_dim must be >= 0, got {self.noise_dim}")
    _require(self.gaussian_mean in ("sigmoid", "identity"),
             f"gaussian_mean must be sigmoid or identity, got {self.gaussian_mean!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
  """Which tfds dataset (or the generated 4frames) and how pixels become binary.

  binarization: "fixed" (the dataset is binary already), "dynamic" (a fresh
  Bernoulli(x / 255) draw each time an image is used, inside the jitted step),
  "threshold" (x > 127) or "none" (x / 255, for a Gaussian decoder).
  """
  dataset: str = "binarized_mnist"
  binarization: str = "fixed"

  def __post_init__(self):
    _require(self.dataset in DATASETS,
             f"unknown dataset {self.dataset!r}: choose one of {DATASETS}")
    allowed = DATASET_BINARIZATIONS[self.dataset]
    _require(self.binarization in allowed,
             f"binarization {self.binarization!r} does not apply to dataset "
             f"{self.dataset!r}: choose one of {allowed}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AVBConfig:
  """Adversarial variational Bayes settings (used by objective "avb" only).

  samples: K encoder samples per image for each loss; moment_samples: M further
  encoder samples per image for the moment-matched r(z|x) of adaptive contrast (0:
  the moments of the K scored samples, as before this option; biased, see
  avb.contrast_moments); adversary_steps: adversary updates per model update;
  eval_proposal_samples: encoder samples for the Gaussian proposal of the test
  log-likelihood.
  """
  adaptive_contrast: bool = False
  adversary_hidden_sizes: tuple[int, ...] = (256, 256)
  adversary_learning_rate: float = 1e-3
  adversary_steps: int = 1
  samples: int = 8
  moment_samples: int = 128
  eval_proposal_samples: int = 1000

  def __post_init__(self):
    for name in ("adversary_steps", "samples", "eval_proposal_samples"):
      _require(getattr(self, name) > 0, f"avb {name} must be positive, got {getattr(self, name)}")
    _require(_positive_finite(self.adversary_learning_rate),
             "adversary_learning_rate must be positive and finite, got "
             f"{self.adversary_learning_rate}")
    _require(self.moment_samples >= 0, f"avb moment_samples must be >= 0, got "
             f"{self.moment_samples}")
    _require(not self.adaptive_contrast or self.moment_samples > 1
             or (self.moment_samples == 0 and self.samples > 1),
             "adaptive contrast needs at least 2 samples per image for its moments")
    _require(all(h > 0 for h in self.adversary_hidden_sizes),
             f"adversary_hidden_sizes must all be positive, got {self.adversary_hidden_sizes}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
  """Everything that determines a training run's trajectory, plus its length.

  A run is resumable only with the same config up to `RUN_LENGTH_FIELDS`
  (training longer or evaluating differently does not change the steps taken).
  """
  model: ModelConfig = ModelConfig()
  data: DataConfig = DataConfig()
  objective: str = "elbo"
  kl_estimator: str = "analytic"
  k: int = 1
  estimator: str = "reparam"
  batch_size: int = 100
  learning_rate: float = 1e-3
  epochs: int = 10
  seed: int = 0
  steps_per_call: int = 100
  checkpoint_every_epochs: int = 1
  eval_k: int = 5000
  eval_batch_size: int = 100
  quadrature_points: int = 512
  quadrature_limit: float = 5.0
  grad_clip: float = 0.0
  kl_warmup_steps: int = 0
  avb: AVBConfig = AVBConfig()

  def __post_init__(self):
    _require(self.objective in OBJECTIVES,
             f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
    _require(self.kl_estimator in KL_ESTIMATORS,
             f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}")
    _require(self.estimator in ESTIMATORS,
             f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
    _require(self.estimator == "reparam" or self.objective == "iwae",
             f"estimator {self.estimator!r} applies to the iwae objective only")
    _require(self.k == 1 or self.objective in ("iwae", "prior_is"),
             f"k={self.k} applies to the iwae and prior_is objectives only")
    for name in ("k", "batch_size", "epochs", "steps_per_call", "checkpoint_every_epochs",
                 "eval_k", "eval_batch_size", "quadrature_points"):
      value = getattr(self, name)
      _require(value > 0, f"{name} must be positive, got {value}")
    _require(0 <= self.seed < 2**32,
             f"seed must be in [0, 2^32), got {self.seed}: a JAX key holds 32 bits of seed "
             "here, so larger or negative seeds would repeat smaller ones")
    _require(_positive_finite(self.learning_rate),
             f"learning_rate must be positive and finite, got {self.learning_rate}")
    _require(_positive_finite(self.quadrature_limit),
             f"quadrature_limit must be positive and finite, got {self.quadrature_limit}")
    _require(self.quadrature_points >= MIN_QUADRATURE_POINTS,
             f"quadrature_points must be at least {MIN_QUADRATURE_POINTS} per axis, got "
             f"{self.quadrature_points}: coarser grids misstate log p(x) by nats (the "
             "README's numbers use 512)")
    _require(self.grad_clip >= 0 and math.isfinite(self.grad_clip),
             f"grad_clip must be >= 0 and finite, got {self.grad_clip}")
    _require(self.kl_warmup_steps >= 0,
             f"kl_warmup_steps must be >= 0, got {self.kl_warmup_steps}")
    _require(self.kl_warmup_steps == 0 or self.objective == "avb",
             "kl_warmup_steps applies to the avb objective only")
    encoder = OBJECTIVE_ENCODERS[self.objective]
    if encoder == "none" and self.model.encoder == "gaussian":  # the default: prior_is
      # trains the decoder alone, so its model has no encoder (as configs before
      # encoder "none" existed said implicitly)
      object.__setattr__(self, "model", dataclasses.replace(self.model, encoder="none"))
    _require(self.model.encoder == encoder,
             f"objective {self.objective!r} trains the {encoder!r} encoder, got "
             f"{self.model.encoder!r}")
    binary = self.data.binarization != "none"
    _require(binary == (self.model.likelihood == "bernoulli"),
             f"likelihood {self.model.likelihood!r} does not fit binarization "
             f"{self.data.binarization!r}: use bernoulli for binary pixels and "
             "gaussian for grey ones (binarization none)")

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
    d = dict(d)
    model = dict(d.pop("model"))
    model["hidden_sizes"] = tuple(model["hidden_sizes"])
    avb = dict(d.pop("avb", {}))
    if avb.get("adaptive_contrast"):  # written before moment_samples existed: adaptive
      avb.setdefault("moment_samples", 0)  # contrast took the moments of the K samples
    if "adversary_hidden_sizes" in avb:
      avb["adversary_hidden_sizes"] = tuple(avb["adversary_hidden_sizes"])
    return cls(model=ModelConfig(**model), data=DataConfig(**d.pop("data")),
               avb=AVBConfig(**avb), **d)


# Fields that may change between a run and its resumption.
RUN_LENGTH_FIELDS = ("epochs", "eval_k", "eval_batch_size", "quadrature_points",
                     "quadrature_limit", "checkpoint_every_epochs")


def trajectory_fields(config: TrainConfig) -> dict[str, Any]:
  """The config without the fields a resumed run may change, nor those its objective
  does not read (AVB's settings for other objectives, moment_samples without adaptive
  contrast)."""
  d = config.to_dict()
  for name in RUN_LENGTH_FIELDS:
    d.pop(name)
  if config.objective != "avb":
    d.pop("avb")
  elif not config.avb.adaptive_contrast:
    d["avb"].pop("moment_samples")
  return d
