"""Convolutional encoder and decoder for square images, as `Net`s (vbayes.models.nets):
flax.linen layers behind the pure contract. `init` returns the plain parameter pytree
(flax's "params" collection), `apply` runs the module on it; the modules hold no state
and draw no randomness.

    encoder = conv_encoder(side=28, channels=(32, 64), hidden_sizes=(), activation="relu")
    params = encoder.init(key, 784, 2 * L)     # in_dim = side^2, out_dim any
    out_xO = encoder.apply(params, x_xD)       # x [..., side^2], any leading axes

Encoder: x as a [side, side, 1] image -> for each c in channels a 3x3 convolution with
c outputs and stride 2 (SAME padding: side halves, rounded up), then the activation ->
flattened -> dense layers of hidden_sizes -> dense to out_dim. Decoder: the mirror,
z -> dense layers -> dense to a [s, s, channels[-1]] grid (s = side / 2^n) -> 3x3
transposed convolutions of stride 2 with channels reversed, the last with one output
channel -> side x side -> flattened to side^2 outputs (Bernoulli logits or Gaussian
pre-means). side must be divisible by 2^len(channels).
"""

import math
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vbayes.models.nets import ACTIVATIONS, Net


def image_side(data_dim: int, num_downsamplings: int) -> int:
  """The side of a square image of data_dim pixels, checked to halve `num_downsamplings`
  times (ValueError otherwise)."""
  side = math.isqrt(data_dim)
  if side * side != data_dim or side % 2**num_downsamplings:
    raise ValueError(f"a convolutional net takes square images whose side halves "
                     f"{num_downsamplings} times; data_dim {data_dim} is not one")
  return side


class _Encoder(nn.Module):
  side: int
  channels: Sequence[int]
  hidden_sizes: Sequence[int]
  activation: str
  out_dim: int

  @nn.compact
  def __call__(self, x_NxD):
    act = ACTIVATIONS[self.activation]
    h = x_NxD.reshape(-1, self.side, self.side, 1)
    for c in self.channels:
      h = act(nn.Conv(c, (3, 3), strides=(2, 2), padding="SAME")(h))
    h = h.reshape(h.shape[0], -1)
    for n in self.hidden_sizes:
      h = act(nn.Dense(n)(h))
    return nn.Dense(self.out_dim)(h)


class _Decoder(nn.Module):
  side: int
  channels: Sequence[int]
  hidden_sizes: Sequence[int]
  activation: str

  @nn.compact
  def __call__(self, z_NxL):
    act = ACTIVATIONS[self.activation]
    h = z_NxL
    for n in self.hidden_sizes:
      h = act(nn.Dense(n)(h))
    small = self.side // 2 ** len(self.channels)
    h = act(nn.Dense(small * small * self.channels[-1])(h))
    h = h.reshape(-1, small, small, self.channels[-1])
    outputs = (*self.channels[-2::-1], 1)
    for i, c in enumerate(outputs):
      h = nn.ConvTranspose(c, (3, 3), strides=(2, 2), padding="SAME")(h)
      if i < len(outputs) - 1:
        h = act(h)
    return h.reshape(h.shape[0], -1)


def _flat_batch(apply):
  """apply on x [..., I] through the module's [N, I] batch."""

  def wrapped(params, x_xI):
    out_NxO = apply(params, x_xI.reshape(-1, x_xI.shape[-1]))
    return out_NxO.reshape(*x_xI.shape[:-1], out_NxO.shape[-1])

  return wrapped


def conv_encoder(side: int, channels: tuple[int, ...], hidden_sizes: tuple[int, ...],
                 activation: str) -> Net:
  """x [..., side^2] -> strided 3x3 convolutions -> dense layers -> [..., out_dim]."""

  def init(key, in_dim, out_dim):
    if in_dim != side * side:
      raise ValueError(f"the encoder takes {side}x{side} images, got in_dim {in_dim}")
    module = _Encoder(side, tuple(channels), tuple(hidden_sizes), activation, out_dim)
    return module.init(key, jnp.zeros((1, in_dim)))["params"]

  def apply(params, x_NxD):
    out_dim = params[f"Dense_{len(hidden_sizes)}"]["bias"].shape[0]  # the output layer
    module = _Encoder(side, tuple(channels), tuple(hidden_sizes), activation, out_dim)
    return module.apply({"params": params}, x_NxD)

  return Net(init=init, apply=_flat_batch(apply))


def conv_decoder(side: int, channels: tuple[int, ...], hidden_sizes: tuple[int, ...],
                 activation: str) -> Net:
  """z [..., L] -> dense layers -> strided 3x3 transposed convolutions -> [..., side^2]."""
  module = _Decoder(side, tuple(channels), tuple(hidden_sizes), activation)

  def init(key, in_dim, out_dim):
    if out_dim != side * side:
      raise ValueError(f"the decoder draws {side}x{side} images, got out_dim {out_dim}")
    return module.init(key, jnp.zeros((1, in_dim)))["params"]

  return Net(init=init, apply=_flat_batch(lambda params, z: module.apply({"params": params}, z)))
