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

The convolutions are lax's (the functions and parameters of flax's nn.Conv and
nn.ConvTranspose), but differentiated they are computed as matrix products over image
patches (im2col), through a custom JVP whose tangents, and so gradients, are those of
the products: on the CPU, XLA's convolution gradients, above all the transposed
convolution's, ran a conv VAE training step 18x slower, while XLA's forward
convolutions are as fast as the products or faster (bench/README.md).
tests/unit/test_conv_nets.py checks values and derivatives against lax's.

  strided:     y[m, n] = sum_{a,b in 0..2} x_pad[2m + a, 2n + b] W[a, b]
               x padded by one zero row and column after (SAME for an even side);
  transposed:  y[2m + p, 2n + r] = sum_{u,v in 0..1} x_pad[m + u, n + v] W[T[p,u], T[r,v]]
               x padded by one zero row and column before, T = [[0, 2], [-, 1]]
               ("-": no tap), i.e. one 2x2 window of 4 * C_in inputs gives the
               2x2 block of outputs (sub-pixel convolution, depth to space).
"""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from vbayes.models.nets import ACTIVATIONS, Net


def image_side(data_dim: int, num_downsamplings: int) -> int:
  """The side of a square image of data_dim pixels, checked to halve `num_downsamplings`
  times (ValueError otherwise)."""
  side = math.isqrt(data_dim)
  if side * side != data_dim or side % 2**num_downsamplings:
    raise ValueError(f"a convolutional net takes square images whose side halves "
                     f"{num_downsamplings} times; data_dim {data_dim} is not one")
  return side


_NHWC = ("NHWC", "HWIO", "NHWC")  # lax's dimension numbers for [N, H, W, C] images


def _strided_by_patches(x_NxHxWxC, kernel_3x3xCxO):
  n, h, w, c = x_NxHxWxC.shape
  if h % 2 or w % 2:  # SAME would pad one before and one after
    raise ValueError(f"a strided convolution here takes even sides, got {h}x{w}")
  padded = jnp.pad(x_NxHxWxC, ((0, 0), (0, 1), (0, 1), (0, 0)))
  patches = jnp.concatenate([padded[:, a:a + h:2, b:b + w:2, :]
                             for a in range(3) for b in range(3)], axis=-1)  # [N, H/2, W/2, 9C]
  return patches @ kernel_3x3xCxO.reshape(9 * c, -1)


# _TAPS[p, u, a] = 1 where output phase p reads window position u through kernel tap a.
_TAPS = np.zeros((2, 2, 3), np.float32)
_TAPS[0, 0, 0] = _TAPS[0, 1, 2] = _TAPS[1, 1, 1] = 1.0


def _transposed_by_patches(x_NxHxWxC, kernel_3x3xCxO):
  """Each output phase (p, r) of the 2x2 block at (m, n) reads the 2x2 window
  x_pad[m:m+2, n:n+2]: one product of [N, H, W, 4C] patches with the [4C, 4O] taps per
  phase; or, with fewer outputs than inputs (16 O < 4 C: the last layer's one channel),
  the [N, H, W, C] x [C, 16 O] product first and its 4 shifted [4 O] slices summed, which
  moves 16 O floats per pixel instead of 4 C."""
  n, h, w, c = x_NxHxWxC.shape
  out = kernel_3x3xCxO.shape[-1]
  phases_UxVxCxPxRxO = jnp.einsum("pua,rvb,abco->uvcpro", _TAPS, _TAPS, kernel_3x3xCxO)
  if 16 * out < 4 * c:
    taps_CxUxVxQ = phases_UxVxCxPxRxO.transpose(2, 0, 1, 3, 4, 5).reshape(c, 2, 2, 4 * out)
    each_NxHxWxUxVxQ = jnp.einsum("nhwc,cuvq->nhwuvq", x_NxHxWxC, taps_CxUxVxQ)
    padded = jnp.pad(each_NxHxWxUxVxQ, ((0, 0), (1, 0), (1, 0), (0, 0), (0, 0), (0, 0)))
    blocks = sum(padded[:, u:u + h, v:v + w, u, v, :] for u in range(2) for v in range(2))
  else:
    padded = jnp.pad(x_NxHxWxC, ((0, 0), (1, 0), (1, 0), (0, 0)))
    patches = jnp.concatenate([padded[:, u:u + h, v:v + w, :]
                               for u in range(2) for v in range(2)], axis=-1)  # [N, H, W, 4C]
    blocks = patches @ phases_UxVxCxPxRxO.reshape(4 * c, 4 * out)  # [N, H, W, (P, R, O)]
  blocks = blocks.reshape(n, h, w, 2, 2, out).transpose(0, 1, 3, 2, 4, 5)
  return blocks.reshape(n, 2 * h, 2 * w, out)


def _xla_where_undifferentiated(xla_conv, by_patches):
  """xla_conv when its result is not differentiated (an evaluation's forward pass);
  by_patches, the same function, and its derivatives when it is (training, HMC). A JVP
  rule, not a VJP: reverse mode transposes it as any jnp code, so under vmap the kernel's
  gradient is one product over the batch, not one per example."""
  conv = jax.custom_jvp(xla_conv)
  conv.defjvp(lambda primals, tangents: jax.jvp(by_patches, primals, tangents))
  return conv


strided_conv3x3 = _xla_where_undifferentiated(
    lambda x, kernel: lax.conv_general_dilated(x, kernel, (2, 2), "SAME",
                                               dimension_numbers=_NHWC),
    _strided_by_patches)
strided_conv3x3.__doc__ = """A 3x3 convolution of stride 2, SAME padding, on even sides:
x [N, H, W, C], kernel [3, 3, C, O] -> [N, H/2, W/2, O] (differentiated, ValueError on
an odd side)."""

transposed_conv3x3 = _xla_where_undifferentiated(
    lambda x, kernel: lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=_NHWC),
    _transposed_by_patches)
transposed_conv3x3.__doc__ = """A 3x3 transposed convolution of stride 2, SAME padding
(lax.conv_transpose's, kernel not flipped): x [N, H, W, C], kernel [3, 3, C, O] ->
[N, 2H, 2W, O]; differentiated, one product of 2x2 patches with the kernel's taps
arranged per output phase, then depth to space (`_transposed_by_patches`)."""


class _Conv3x3(nn.Module):
  """nn.Conv(features, (3, 3), strides=2, padding="SAME")'s parameters and function, or
  nn.ConvTranspose's with `transposed`, computed by `strided_conv3x3` or
  `transposed_conv3x3`."""
  features: int
  transposed: bool = False

  @nn.compact
  def __call__(self, x_NxHxWxC):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x_NxHxWxC.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    conv = transposed_conv3x3 if self.transposed else strided_conv3x3
    return conv(x_NxHxWxC.astype(kernel.dtype), kernel) + bias  # as nn.Conv promotes


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
    for i, c in enumerate(self.channels):
      h = act(_Conv3x3(c, name=f"Conv_{i}")(h))
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
      h = _Conv3x3(c, transposed=True, name=f"ConvTranspose_{i}")(h)
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
