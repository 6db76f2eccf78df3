"""The base of every objective's settings (vbayes/objectives/<name>.py: Config)."""

import dataclasses
from typing import Any, ClassVar

from vbayes.errors import require


class ObjectiveConfig:
  """A frozen, kw_only dataclass in the objective's module, with class attributes `name`
  (its key in the registry and in config.json), `needs` (what it needs of the model's
  proposal: "density", "reparameterized", "implicit", "prior";
  vbayes.parts.ProposalConfig.offers)
  and `proposal` (the proposal it trains when a run switches to it). Subclasses register
  themselves by name when their module is imported."""
  name: ClassVar[str]
  needs: ClassVar[frozenset[str]]
  proposal: ClassVar[str]
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

  def fits(self, model) -> bool:
    """Whether the model's proposal (a ModelConfig's) offers all this objective needs."""
    return self.needs <= model.proposal.offers

  def check_needs(self, model):
    """ConfigError naming what the model's proposal lacks, unless it `fits`."""
    missing = sorted(self.needs - model.proposal.offers)
    require(not missing, f"objective {self.name!r} needs a proposal that offers "
            f"{' and '.join(missing)}; proposal {model.proposal.name!r} offers "
            f"{', '.join(sorted(model.proposal.offers)) or 'nothing'}: use "
            f"model.proposal={self.proposal}")

  def check_model(self, model):
    """ConfigError if this objective cannot train `model` for a reason of its own."""
