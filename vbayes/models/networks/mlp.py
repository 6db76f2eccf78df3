"""Fully connected encoder and decoder: x -> hidden_sizes -> out, and the mirror."""

import dataclasses

from vbayes.errors import require
from vbayes.models import nets
from vbayes.parts import NetworkConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(NetworkConfig):
  """The encoder's hidden_sizes (the decoder's reversed), `activation` between layers;
  () makes both linear."""
  name = "mlp"
  hidden_sizes: tuple[int, ...] = (500, 500)
  activation: str = "relu"

  def __post_init__(self):
    require(all(h > 0 for h in self.hidden_sizes),
            f"hidden_sizes must all be positive, got {self.hidden_sizes}")
    require(self.activation in nets.ACTIVATIONS,
            f"activation must be one of {tuple(nets.ACTIVATIONS)}, got {self.activation!r}")

  def build(self, model) -> tuple[nets.Net, nets.Net]:
    del model
    hidden = tuple(self.hidden_sizes)
    return nets.mlp(hidden, self.activation), nets.mlp(hidden[::-1], self.activation)
