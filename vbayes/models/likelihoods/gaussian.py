"""Grey pixels: p(x | z) = N(x; m(f(z)), diag s^2), one learned scale per pixel."""

import dataclasses

import jax
import jax.numpy as jnp

from vbayes import distributions
from vbayes.errors import require
from vbayes.models.interfaces import Likelihood
from vbayes.numerics import LOG_2PI
from vbayes.parts import LikelihoodConfig

MEANS = ("sigmoid", "identity")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(LikelihoodConfig):
  """min_scale: the least per-pixel scale s_d; gaussian_mean: m = sigmoid (pixels in
  [0, 1]) or identity."""
  name = "gaussian"
  pixels = "grey"
  min_scale: float = 0.01
  gaussian_mean: str = "sigmoid"

  def __post_init__(self):
    require(self.min_scale > 0, f"min_scale must be positive, got {self.min_scale}")
    require(self.gaussian_mean in MEANS,
            f"gaussian_mean must be one of {MEANS}, got {self.gaussian_mean!r}")

  def build(self, model) -> Likelihood:
    del model
    return likelihood(self.min_scale, self.gaussian_mean)


def likelihood(min_scale: float, mean_fn: str = "sigmoid") -> Likelihood:
  """p(x | z) = N(x; m(f(z)), diag s^2), m = sigmoid (or the identity), one learned
  scale per pixel s_d = min_scale + softplus(r_d), r kept under params["decoder_raw_scale"]
  (r = 0 gives s of about 0.7).

  The matrix form keeps each difference x_bd - m_gd and squares it:
      log p(x_b | z_g) = -sum_d [a_d (x_bd - m_gd)^2 + log s_d + log(2 pi) / 2],  a = 1 / (2 s^2),
  a [B, G, D] elementwise reduction. Expanding the square as x^2 . a - 2 x . (a m)
  + a . m^2 would cancel terms of ~1e6 at s = 0.01 down to ~D / 2 near the mode, and
  cost float32 0.4-1 nats; XLA fuses the reduction with the differences, so no
  [B, G, D] buffer is written on CPU, but callers still bound B * G * D.
  """
  mean = jax.nn.sigmoid if mean_fn == "sigmoid" else (lambda out: out)
  scale = lambda raw_D: min_scale + jax.nn.softplus(raw_D)

  def log_prob(raw_D, out_D, x_D, mask_D=None):
    return distributions.gaussian_log_prob(mean(out_D), jnp.log(scale(raw_D)), x_D, mask_D)

  def log_prob_of_samples(raw_D, out_BxKxD, x_BxD):
    per_image = jax.vmap(distributions.gaussian_log_prob, in_axes=(0, None, None))
    return jax.vmap(per_image, in_axes=(0, None, 0))(mean(out_BxKxD), jnp.log(scale(raw_D)),
                                                     x_BxD)

  def log_prob_matrix(raw_D, out_GxD, x_BxD, mask_D=None):
    mask_D = jnp.ones(x_BxD.shape[-1:], x_BxD.dtype) if mask_D is None else mask_D
    scale_D = scale(raw_D)
    a_D = mask_D * (0.5 / scale_D**2)
    const = jnp.sum(mask_D * (jnp.log(scale_D) + 0.5 * LOG_2PI))
    x_BxD = x_BxD * mask_D
    quad_BxG = jnp.sum(a_D * jnp.square(x_BxD[:, None, :] - mean(out_GxD)[None, :, :]), axis=-1)
    return -quad_BxG - const

  def sample(raw_D, key, out):
    m = mean(out)
    return m + scale(raw_D) * jax.random.normal(key, m.shape)

  return Likelihood(
      param_key="decoder_raw_scale",
      init=lambda data_dim: jnp.zeros((data_dim,), jnp.float32),
      log_prob=log_prob, log_prob_of_samples=log_prob_of_samples,
      log_prob_matrix=log_prob_matrix, mean=lambda raw_D, out: mean(out), sample=sample,
      entries_per_pair=lambda data_dim: data_dim)
