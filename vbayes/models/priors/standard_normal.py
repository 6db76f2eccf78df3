"""p(z) = N(0, I_L): no parameters."""

import dataclasses

from vbayes import distributions
from vbayes.models.interfaces import Prior
from vbayes.parts import PriorConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(PriorConfig):
  """No settings. KL(q || p) has a closed form for the (one-layer) Gaussian proposal."""
  name = "standard_normal"
  closed_form_kl = frozenset({"gaussian"})

  def build(self, model, proposal) -> Prior:
    del proposal
    return prior(model.latent_dim)


def prior(latent_dim: int) -> Prior:
  """p(z) = N(0, I_L), no parameters."""
  dist = distributions.StdNormal(latent_dim)
  return Prior(init=lambda key: None, distribution=lambda params: dist)
