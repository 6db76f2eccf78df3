"""The inverse autoregressive flow posterior (Kingma et al. 2016) after a Gaussian encoder."""

import dataclasses

from vbayes.errors import require
from vbayes.models import flows, nets
from vbayes.models.interfaces import Proposal
from vbayes.parts import ProposalConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(ProposalConfig):
  """flow_steps IAF steps after the encoder network's Gaussian, each a MADE of
  flow_hidden_sizes with `activation` (vbayes/models/flows.py)."""
  name = "iaf"
  offers = frozenset({"density", "reparameterized"})
  flow_steps: int = 2
  flow_hidden_sizes: tuple[int, ...] = (200, 200)
  activation: str = "relu"

  def __post_init__(self):
    require(self.flow_steps > 0, f"flow_steps must be positive, got {self.flow_steps}")
    require(bool(self.flow_hidden_sizes) and all(h > 0 for h in self.flow_hidden_sizes),
            f"flow_hidden_sizes must be positive and at least one, got "
            f"{self.flow_hidden_sizes}")
    require(self.activation in nets.ACTIVATIONS,
            f"activation must be one of {tuple(nets.ACTIVATIONS)}, got {self.activation!r}")

  def check(self, model):
    require(len(model.latent_layers) == 1,
            "a flow posterior is built here for one stochastic layer; use another prior than "
            f"{model.prior.name!r}")

  def build(self, model, encoder_net: nets.Net) -> Proposal:
    return flows.iaf_encoder(encoder_net, model.data_dim, model.latent_dim, self.flow_steps,
                             tuple(self.flow_hidden_sizes), self.activation)
