"""Likelihoods p(x | z) on the decoder's output f(z).

A `Likelihood` gives log p(x | z) in the three forms the estimators need, each
from the decoder outputs, plus the mean and a sample:
  log_prob(lp, out_D, x_D, mask_D=None)      one image, one z; mask_D (0/1) keeps the
                                             observed pixels: log p(x_obs | z)
  log_prob_of_samples(lp, out_BxKxD, x_BxD)  [B, K]: K samples of each of B images
  log_prob_matrix(lp, out_GxD, x_BxD, mask_D)  [B, G]: every image against every z_g
  mean(lp, out), sample(lp, key, out)        E[x | z] and x ~ p(x | z)
`lp` is the likelihood's parameters, kept under params[param_key] (None when it
has none). entries_per_pair(D): floats `log_prob_matrix` holds per (image, z)
pair, for callers that bound its memory.
"""

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from vbayes import distributions
from vbayes.numerics import LOG_2PI, softplus


class Likelihood(NamedTuple):
  param_key: str | None
  init: Callable[[int], Any]
  log_prob: Callable
  log_prob_of_samples: Callable
  log_prob_matrix: Callable
  mean: Callable
  sample: Callable
  entries_per_pair: Callable[[int], int]


_dot = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)


def bernoulli() -> Likelihood:
  """p(x | z) = prod_d Bernoulli(x_d; sigmoid(l_d)), l = f(z) the logits.

  log p(x | z) = sum_d x_d l_d - softplus(l_d). For K samples of B images the
  first sum is a contraction of l_BxKxD with x_BxD, so x is never copied to each
  sample; against G latent points both sums are matrix products, run at full
  float32 precision on every backend (they add hundreds of terms of size ~10,
  where bfloat16 passes, a TPU's default for products, would cost nats).
  """

  def log_prob_of_samples(lp, out_BxKxD, x_BxD):
    del lp
    return jnp.einsum("bkd,bd->bk", out_BxKxD, x_BxD) - jnp.sum(softplus(out_BxKxD), axis=-1)

  def log_prob_matrix(lp, out_GxD, x_BxD, mask_D=None):
    del lp
    mask_D = jnp.ones(x_BxD.shape[-1:], x_BxD.dtype) if mask_D is None else mask_D
    return _dot(x_BxD * mask_D, out_GxD.T) - _dot(softplus(out_GxD), mask_D)[None, :]

  def sample(lp, key, out):
    mean = jax.nn.sigmoid(out)
    return jax.random.bernoulli(key, mean).astype(mean.dtype)

  return Likelihood(
      param_key=None, init=lambda data_dim: None,
      log_prob=lambda lp, out_D, x_D, mask_D=None: distributions.bernoulli_log_prob(
          out_D, x_D, mask_D),
      log_prob_of_samples=log_prob_of_samples, log_prob_matrix=log_prob_matrix,
      mean=lambda lp, out: jax.nn.sigmoid(out), sample=sample,
      entries_per_pair=lambda data_dim: 1)


def gaussian(min_scale: float, mean_fn: str = "sigmoid") -> Likelihood:
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


def from_log_prob(log_prob: Callable, mean: Callable, sample: Callable,
                  param_key: str | None = None, init: Callable[[int], Any] = lambda d: None
                  ) -> Likelihood:
  """A likelihood from its one-image density log_prob(lp, out_D, x_D, mask_D=None).

  The batched and matrix forms are that density vmapped over samples and images:
  correct for any density, but without the contractions `bernoulli` and `gaussian`
  use for speed. A new likelihood can start here and specialize later.
  """
  per_sample = jax.vmap(log_prob, in_axes=(None, 0, None))  # [K] for one image

  def log_prob_of_samples(lp, out_BxKxD, x_BxD):
    return jax.vmap(per_sample, in_axes=(None, 0, 0))(lp, out_BxKxD, x_BxD)

  def log_prob_matrix(lp, out_GxD, x_BxD, mask_D=None):
    one = lambda out_D, x_D: log_prob(lp, out_D, x_D, mask_D)
    return jax.vmap(lambda x_D: jax.vmap(lambda out_D: one(out_D, x_D))(out_GxD))(x_BxD)

  return Likelihood(param_key=param_key, init=init, log_prob=log_prob,
                    log_prob_of_samples=log_prob_of_samples, log_prob_matrix=log_prob_matrix,
                    mean=mean, sample=sample, entries_per_pair=lambda data_dim: data_dim)
