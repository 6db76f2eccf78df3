"""Convolutional encoder and decoder for square images (vbayes/models/conv_nets.py)."""

import dataclasses
import math

from vbayes.errors import require
from vbayes.models import conv_nets, nets
from vbayes.parts import NetworkConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(NetworkConfig):
  """A 3x3 convolution of stride 2 per entry of conv_channels, then dense layers of
  hidden_sizes, in the encoder; the mirror, with transposed convolutions, in the decoder."""
  name = "conv"
  conv_channels: tuple[int, ...] = (32, 64)
  hidden_sizes: tuple[int, ...] = (500, 500)
  activation: str = "relu"

  def __post_init__(self):
    require(bool(self.conv_channels) and all(c > 0 for c in self.conv_channels),
            f"conv_channels must be positive and at least one, got {self.conv_channels}")
    require(all(h > 0 for h in self.hidden_sizes),
            f"hidden_sizes must all be positive, got {self.hidden_sizes}")
    require(self.activation in nets.ACTIVATIONS,
            f"activation must be one of {tuple(nets.ACTIVATIONS)}, got {self.activation!r}")

  def check(self, model):
    side, halvings = math.isqrt(model.data_dim), len(self.conv_channels)
    require(side * side == model.data_dim and side % 2**halvings == 0,
            f"a conv network takes square images whose side halves {halvings} times "
            f"(one per conv_channels entry); data_dim {model.data_dim} is not one")

  def build(self, model) -> tuple[nets.Net, nets.Net]:
    hidden = tuple(self.hidden_sizes)
    side = conv_nets.image_side(model.data_dim, len(self.conv_channels))
    return (conv_nets.conv_encoder(side, self.conv_channels, hidden, self.activation),
            conv_nets.conv_decoder(side, self.conv_channels, hidden[::-1], self.activation))
