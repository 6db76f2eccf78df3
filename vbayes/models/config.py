"""ModelConfig: one part of each family, chosen by name (vbayes.parts), and the sizes.

    ModelConfig(latent_dim=50, network=mlp.Config(hidden_sizes=(200, 200), activation="tanh"),
                prior="vamp")                      # a name: that part with its defaults

to_dict() holds each part as {"name": ..., its settings}; from_dict() also reads the
flat layout of earlier config.json files (ModelConfig fields `encoder`, `prior`,
`hidden_sizes`, `flow`, `latent_dim_2`, ...), so their runs resume.
"""

import dataclasses
from typing import Any

from vbayes import parts
from vbayes.errors import require
from vbayes.models.likelihoods import bernoulli
from vbayes.models.networks import mlp
from vbayes.models.priors import standard_normal
from vbayes.models.proposals import gaussian


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
  """p(z) p(x | z) and q(z | x) on data_dim pixels with latent_dim latent units (z1's,
  under a prior of several stochastic layers): the network (encoder and decoder), the
  likelihood p(x | z) on the decoder's output, the prior p(z) and the proposal q(z | x).
  Defaults: 784-500-500-2 ReLU MLPs, Bernoulli pixels, N(0, I), a Gaussian encoder.
  Each part is its Config or its name (that part's defaults); each checks, in `check`,
  that it can work beside the others.
  """
  data_dim: int = 784
  latent_dim: int = 2
  network: parts.NetworkConfig = mlp.Config()
  likelihood: parts.LikelihoodConfig = bernoulli.Config()
  prior: parts.PriorConfig = standard_normal.Config()
  proposal: parts.ProposalConfig = gaussian.Config()

  def __post_init__(self):
    require(self.data_dim > 0, f"data_dim must be positive, got {self.data_dim}")
    require(self.latent_dim > 0, f"latent_dim must be positive, got {self.latent_dim}")
    for family in parts.FAMILIES:
      part = getattr(self, family)
      if isinstance(part, str):
        object.__setattr__(self, family, parts.part_config(family, part))
      part = getattr(self, family)
      base = getattr(parts, f"{family.capitalize()}Config")
      require(isinstance(part, base), f"model {family} must be a {family}'s name or Config "
              f"(vbayes/models/{family}s/), got {part!r}")
    for family in parts.FAMILIES:
      getattr(self, family).check(self)

  def parts(self) -> dict[str, parts.PartConfig]:
    """{family: this model's part of it}."""
    return {family: getattr(self, family) for family in parts.FAMILIES}

  @property
  def latent_layers(self) -> tuple[int, ...]:
    """The units of each stochastic layer, z1 first: z = [z1, z2, ...] has their sum."""
    return self.prior.latent_layers(self.latent_dim)

  @property
  def closed_form_kl(self) -> bool:
    """Whether KL(q(z|x) || p(z)) has a closed form (vbayes.distributions.kl_divergence)."""
    return self.proposal.name in self.prior.closed_form_kl

  @property
  def without_closed_form_kl(self) -> str | None:
    """What makes KL(q(z|x) || p(z)) lack a closed form, in words; None if it has one."""
    if self.closed_form_kl:
      return None
    return f"the {self.prior.name} prior with the {self.proposal.name} proposal"

  def with_part(self, family: str, name: str) -> "ModelConfig":
    """This model with the `family` part called `name` (`chosen_part`'s settings)."""
    d = self.to_dict()
    d[family] = chosen_part(d, family, name)
    return ModelConfig.from_dict(d)

  def to_dict(self) -> dict[str, Any]:
    return {"data_dim": self.data_dim, "latent_dim": self.latent_dim,
            **{family: part.to_dict() for family, part in self.parts().items()}}

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
    """From to_dict()'s layout, or from the flat one of earlier config.json files."""
    d = dict(d)
    if any(not isinstance(d.get(family, {}), dict) for family in parts.FAMILIES) or any(
        key not in ("data_dim", "latent_dim", *parts.FAMILIES) for key in d):
      d = from_flat(d)
    return cls(**{key: parts.from_dict(key, value) if key in parts.FAMILIES else value
                  for key, value in d.items()})


def chosen_part(model: dict[str, Any], family: str, name: str) -> dict[str, Any]:
  """The `family` part called `name` for `model` (to_dict's layout), as a dict: its
  defaults, except each setting that a part of the model has too, taken from the part it
  replaces, else the network, else another part (an implicit encoder switched to takes
  the network's hidden_sizes and activation, as the flat model of earlier versions
  shared them)."""
  cls = parts.registry(family).get(name)
  require(cls is not None, f"unknown {family} {name!r}: choose one of "
          f"{tuple(parts.registry(family))}")
  sources = [model[family], model["network"],
             *(model[f] for f in parts.FAMILIES if f not in (family, "network"))]
  settings = {}
  for key in parts.settings_of(cls):
    found = next((source[key] for source in sources if key in source), None)
    if found is not None:
      settings[key] = found
  return {"name": name, **settings}


# Earlier config.json files: which part of each family a flat ModelConfig chose.
_FLAT_CHOICE = {
    "network": lambda flat: flat.get("network", "mlp"),
    "likelihood": lambda flat: flat.get("likelihood", "bernoulli"),
    "prior": lambda flat: "two_layer" if flat.get("latent_dim_2") else flat.get(
        "prior", "standard_normal"),
    "proposal": lambda flat: {"none": "prior", "implicit": "implicit"}.get(
        flat.get("encoder", "gaussian"), "iaf" if flat.get("flow",
                                                           "none") == "iaf" else "gaussian"),
}


def from_flat(flat: dict[str, Any]) -> dict[str, Any]:
  """The to_dict() layout of a flat ModelConfig dict (config.json before part registries):
  each family's part as the flat dict chose it, with every setting of that part that the
  flat dict holds under the same name (`activation` was one, shared by every part)."""
  out = {key: flat[key] for key in ("data_dim", "latent_dim") if key in flat}
  for family, choose in _FLAT_CHOICE.items():
    name = choose(flat)
    cls = parts.registry(family).get(name)
    require(cls is not None, f"config.json's model chose {family} {name!r}, which is not one "
            f"of {tuple(parts.registry(family))}")
    out[family] = {"name": name, **{key: flat[key] for key in parts.settings_of(cls)
                                    if key in flat}}
  return out
