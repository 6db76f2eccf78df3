"""Families of model parts chosen by name: networks, likelihoods, priors, proposals.

A part is one module (vbayes/models/<family>/<name>.py) holding
    Config   a frozen, kw_only dataclass of its settings, subclassing its family's base
             (e.g. PriorConfig), with class attributes `name` (its key in the registry,
             in config.json and on the command line) and `offers` (what it gives an
             estimator or another part: "density", "reparameterized", ...);
             Config.check(model) raises ConfigError where the part cannot work in
             `model` (a vbayes.models.config.ModelConfig); Config.build(model, ...) makes
             it (a prior's build also takes the proposal, a proposal's the encoder net)
and one line in its family's __init__.py, which imports it. Defining the Config
registers it: `part_config("prior", "vamp", num_pseudo_inputs=100)` finds it, the
command line gets a flag per setting, and `--set=model.prior.<setting>=...` a path.
"""

import dataclasses
import typing
from typing import Any, ClassVar

from vbayes.errors import ConfigError, require

FAMILIES = ("network", "likelihood", "prior", "proposal")
_REGISTRY: dict[str, dict[str, type]] = {family: {} for family in FAMILIES}


class PartConfig:
  """The base of every part's Config (one subclass per family sets `family`)."""
  family: ClassVar[str]
  name: ClassVar[str]
  offers: ClassVar[frozenset[str]] = frozenset()

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if "name" not in cls.__dict__:  # a family's base, or a subclass of a part's Config
      return
    known = _REGISTRY[cls.family].get(cls.name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__,
                                                                       cls.__qualname__):
      raise ValueError(f"{cls.family} name {cls.name!r} is taken by {known.__module__}")
    _REGISTRY[cls.family][cls.name] = cls

  def check(self, model) -> None:
    """ConfigError if this part cannot work in `model` (by default it can)."""

  def to_dict(self) -> dict[str, Any]:
    return {"name": self.name, **dataclasses.asdict(self)}

  def replace(self, **settings) -> "PartConfig":
    return dataclasses.replace(self, **settings)


def registry(family: str) -> dict[str, type]:
  """Every registered part of `family`, by name (its modules imported)."""
  require(family in _REGISTRY, f"unknown part family {family!r}: choose one of {FAMILIES}")
  _import_family(family)
  return _REGISTRY[family]


def _import_family(family: str):
  import importlib  # pylint: disable=import-outside-toplevel
  importlib.import_module(f"vbayes.models.{family}s")


def part_config(family: str, name: str, **settings) -> PartConfig:
  """The Config of the `family` part called `name`, with its defaults or `settings`."""
  parts = registry(family)
  require(name in parts, f"unknown {family} {name!r}: choose one of {tuple(parts)}")
  cls = parts[name]
  fields = settings_of(cls)
  unknown = sorted(set(settings) - set(fields))
  require(not unknown, f"{family} {name!r} has no setting {', '.join(unknown)}: its settings "
          f"are {', '.join(sorted(fields)) or 'none'}")
  try:
    return cls(**settings)
  except TypeError as e:
    raise ConfigError(f"{family} {name!r}: {e}") from None


def settings_of(cls: type) -> dict[str, dataclasses.Field]:
  """A part's (or objective's) settings: its dataclass fields by name."""
  return {f.name: f for f in dataclasses.fields(cls)}


def from_dict(family: str, d: dict[str, Any]) -> PartConfig:
  """A part's Config from its to_dict() (JSON lists read back as tuples)."""
  d = dict(d)
  require("name" in d, f"a {family} is a dict with its name, got {d}")
  name = d.pop("name")
  return part_config(family, name, **{key: as_field_value(value) for key, value in d.items()})


def as_field_value(value):
  """JSON has no tuples: lists (nested too) become tuples."""
  if isinstance(value, list):
    return tuple(as_field_value(v) for v in value)
  return value


def field_type(cls: type, name: str):
  """The type annotation of field `name` of dataclass `cls`."""
  return typing.get_type_hints(cls).get(name, str)


class NetworkConfig(PartConfig):
  """A network family: build(model) -> (encoder net, decoder net) (vbayes.models.nets.Net)."""
  family = "network"


class LikelihoodConfig(PartConfig):
  """p(x | z): build(model) -> vbayes.models.interfaces.Likelihood. `pixels` is the data
  it models: "binary" (0/1) or "grey" (values in [0, 1], or any real for some)."""
  family = "likelihood"
  pixels: ClassVar[str] = "binary"


class PriorConfig(PartConfig):
  """p(z): build(model, proposal) -> vbayes.models.interfaces.Prior (a prior may be made
  of the proposal, as the VampPrior is). `closed_form_kl` names the proposals q with
  which KL(q(z|x) || p(z)) has a closed form. latent_layers(L): the units of each
  stochastic layer, z1 first (one layer of L unless the prior stacks several)."""
  family = "prior"
  closed_form_kl: ClassVar[frozenset[str]] = frozenset()

  def latent_layers(self, latent_dim: int) -> tuple[int, ...]:
    return (latent_dim,)


class ProposalConfig(PartConfig):
  """q(z | x): build(model, encoder_net) -> vbayes.models.interfaces.Proposal, or None
  when the prior proposes. `offers` what objectives and other parts need: "density"
  (log q(z | x)), "reparameterized" (draws z = g(x, eps) to take path derivatives
  through), "diag_normal" (q(z | x) is a DiagNormal), "implicit" (draws from a network
  fed noise, without a density), "prior" (the prior proposes)."""
  family = "proposal"
