"""Tomczak & Welling's (2018) gated dense nets: h = (W1 x + b1) * sigmoid(W2 x + b2)."""

import dataclasses

from vbayes.errors import require
from vbayes.models import nets
from vbayes.parts import NetworkConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(NetworkConfig):
  """The encoder's gated hidden_sizes (the decoder's reversed); He-normal weights. The
  gate is the nonlinearity: no activation."""
  name = "gated"
  hidden_sizes: tuple[int, ...] = (500, 500)

  def __post_init__(self):
    require(all(h > 0 for h in self.hidden_sizes),
            f"hidden_sizes must all be positive, got {self.hidden_sizes}")

  def build(self, model) -> tuple[nets.Net, nets.Net]:
    del model
    hidden = tuple(self.hidden_sizes)
    return nets.gated_mlp(hidden), nets.gated_mlp(hidden[::-1])
