r"""Grey pixels in [0, 1]: the continuous Bernoulli (Loaiza-Ganem & Cunningham 2019),

    p(x | l) = C(l) lambda^x (1 - lambda)^(1 - x),   x in [0, 1],  lambda = sigmoid(l),
    C(l) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) = l / tanh(l / 2)     (C(0) = 2),

one factor per pixel, l = f(z) the decoder's logits. In logits the normalizing constant
has no 0/0 at lambda = 1/2 but the ratio l / tanh(l / 2) still does at l = 0, and its
float32 gradient 1/l - 1/sinh(l) cancels near there; for |l| < SERIES_BELOW it is its
series, log C(l) = log 2 + log1p(l^2/12 - l^4/720 + l^6/30240) (next term l^8/1209600,
under 1e-8 there). So

    log p(x | z) = sum_d [ x_d l_d - softplus(l_d) + log C(l_d) ],

the Bernoulli's log-likelihood plus sum_d log C(l_d): for K samples of B images one
contraction of l with x, and against G latent points two matrix products. Its mean is
E[x] = lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)) = -1 / expm1(-l) - 1 / l
(1/2 + l/12 - l^3/720 + l^5/30240 under SERIES_BELOW), and x = F^{-1}(u) =
log1p(u expm1(l)) / l for u ~ U(0, 1) (u where |l| < 1e-6), computed for l <= 0 and
mirrored (x ~ CB(l) iff 1 - x ~ CB(-l)).
"""

import dataclasses

import jax
import jax.numpy as jnp

from vbayes import distributions, precision
from vbayes.models.interfaces import Likelihood
from vbayes.models.likelihoods import bernoulli
from vbayes.parts import LikelihoodConfig

SERIES_BELOW = 0.5  # |l| under which log C(l) and E[x] are their series
UNIFORM_BELOW = 1e-6  # |l| under which a draw is u itself (off by O(l))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(LikelihoodConfig):
  """No settings: the decoder's outputs are the logits l."""
  name = "continuous_bernoulli"
  pixels = "grey"

  def build(self, model) -> Likelihood:
    del model
    return likelihood()


def log_normalizer(logits: jax.Array) -> jax.Array:
  """log C(l) = log(l / tanh(l / 2)), elementwise; finite, with finite gradients, at l = 0."""
  small = jnp.abs(logits) < SERIES_BELOW
  safe = jnp.where(small, 1.0, jnp.abs(logits))
  direct = jnp.log(safe) - jnp.log(jnp.tanh(0.5 * safe))
  l2 = jnp.square(jnp.where(small, logits, 0.0))
  series = jnp.log(2.0) + jnp.log1p(l2 * (1.0 / 12.0 + l2 * (-1.0 / 720.0 + l2 / 30240.0)))
  return jnp.where(small, series, direct)


def mean(logits: jax.Array) -> jax.Array:
  """E[x | l] = -1 / expm1(-l) - 1 / l, elementwise (1/2 at l = 0), computed at |l| and
  mirrored, E[x | l] = 1 - E[x | -l], so that expm1 never overflows."""
  small = jnp.abs(logits) < SERIES_BELOW
  safe = jnp.where(small, 1.0, jnp.abs(logits))
  direct = -1.0 / jnp.expm1(-safe) - 1.0 / safe  # E[x | |l|]
  direct = jnp.where(logits >= 0, direct, 1.0 - direct)
  l = jnp.where(small, logits, 0.0)
  l2 = l * l
  return jnp.where(small, 0.5 + l * (1.0 / 12.0 + l2 * (-1.0 / 720.0 + l2 / 30240.0)), direct)


def sample(key: jax.Array, logits: jax.Array) -> jax.Array:
  """x ~ CB(l) by the inverse CDF, elementwise."""
  u = jax.random.uniform(key, logits.shape, logits.dtype)
  negative = -jnp.abs(logits)
  small = negative > -UNIFORM_BELOW
  safe = jnp.where(small, -1.0, negative)
  y = jnp.where(small, u, jnp.log1p(u * jnp.expm1(safe)) / safe)  # x ~ CB(-|l|)
  return jnp.clip(jnp.where(logits > 0, 1.0 - y, y), 0.0, 1.0)


def log_prob(logits_D: jax.Array, x_D: jax.Array, mask_D=None) -> jax.Array:
  """log p(x | l) of one image, summed over its (observed, with a 0/1 mask) pixels."""
  log_c_D = log_normalizer(logits_D)
  return (distributions.bernoulli_log_prob(logits_D, x_D, mask_D)
          + jnp.sum(log_c_D if mask_D is None else log_c_D * mask_D, axis=-1))


def likelihood() -> Likelihood:
  """The continuous Bernoulli of the decoder's logits, in the Likelihood protocol: the
  Bernoulli's forms (bernoulli.likelihood) plus sum_d log C(l_d)."""
  binary = bernoulli.likelihood()

  def log_prob_of_samples(lp, out_BxKxD, x_BxD):
    return (binary.log_prob_of_samples(lp, out_BxKxD, x_BxD)
            + jnp.sum(log_normalizer(out_BxKxD), axis=-1))

  def log_prob_matrix(lp, out_GxD, x_BxD, mask_D=None):
    mask = jnp.ones(x_BxD.shape[-1:], x_BxD.dtype) if mask_D is None else mask_D
    return (binary.log_prob_matrix(lp, out_GxD, x_BxD, mask_D)
            + precision.matmul_highest(log_normalizer(out_GxD), mask)[None, :])

  return Likelihood(
      param_key=None, init=lambda data_dim: None,
      log_prob=lambda lp, out_D, x_D, mask_D=None: log_prob(out_D, x_D, mask_D),
      log_prob_of_samples=log_prob_of_samples, log_prob_matrix=log_prob_matrix,
      mean=lambda lp, out: mean(out), sample=lambda lp, key, out: sample(key, out),
      entries_per_pair=lambda data_dim: 1)
