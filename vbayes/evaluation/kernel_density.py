"""Importance sampling from the kernel density of an encoder's samples: AVB's proposal.

An implicit encoder (adversarial variational Bayes) draws z ~ q(z|x) but has no density;
the kernel density r(z|x) of M of its draws is a known density that follows q where it
curves or splits, so importance sampling from r estimates p(x) (Mescheder et al. 2017
evaluate AVB this way).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vbayes import numerics, precision
from vbayes.models import Model, ModelConfig, as_model


class KernelDensity(NamedTuple):
  """r(z) = (1/M) sum_m N(z; c_m, h^2 I), the kernel density of M centres c_m [M, L]."""
  centres_MxL: jax.Array
  bandwidth: jax.Array

  def sample(self, key: jax.Array, num: int) -> jax.Array:
    """z_i = c_{m_i} + h eps_i, m_i uniform, eps_i ~ N(0, I): [num, L]."""
    pick_key, noise_key = jax.random.split(key)
    pick = jax.random.randint(pick_key, (num,), 0, self.centres_MxL.shape[0])
    noise = jax.random.normal(noise_key, (num, self.centres_MxL.shape[1]))
    return self.centres_MxL[pick] + self.bandwidth * noise

  def log_prob(self, z_xL: jax.Array) -> jax.Array:
    """log r(z) for z [..., L]: [...]."""
    num, latent = self.centres_MxL.shape
    h = self.bandwidth
    log_norm = latent * jnp.log(h) + 0.5 * latent * jnp.log(2 * jnp.pi) + jnp.log(num)
    sq_dist_xM = jnp.sum((z_xL[..., None, :] - self.centres_MxL) ** 2, axis=-1)
    return jax.nn.logsumexp(-0.5 * sq_dist_xM / h**2, axis=-1) - log_norm


def _kde_log_likelihood_one(params, model: Model, key, x_D, *, k: int, num_centres: int,
                            bandwidth, chunk: int):
  centre_key, sample_key = jax.random.split(key)
  r = KernelDensity(model.sample_proposal(params, centre_key, x_D, num_centres), bandwidth)

  def chunk_terms(i):
    z_1xCxL = r.sample(jax.random.fold_in(sample_key, i), chunk)[None]
    return model.log_weights(params, x_D[None], z_1xCxL, r)[0], None

  log_sum, _ = numerics.logsumexp_over_chunks(chunk_terms, jnp.arange(k // chunk))
  return log_sum - jnp.log(k)


@functools.partial(jax.jit, static_argnames=("model", "k", "num_centres", "chunk"))
@precision.estimates
def kde_log_likelihood(params, key, x_BxD, *, model: Model | ModelConfig, k: int,
                       num_centres: int, bandwidth: float, chunk: int = 100):
  """log p(x) ~= log (1/k) sum_i p(x|z_i) p(z_i) / r(z_i|x),  z_i ~ r,  per image [B].

  r(z|x) = (1/M) sum_m N(z; c_m, h^2 I) is the kernel density of M encoder
  samples c_m ~ q(z|x). Given the centres r is a fixed, fully known density, so
  this is ordinary importance sampling (unbiased for p(x), a stochastic lower
  bound on log p(x)); it follows a curved or multimodal implicit q where the
  moment-matched Gaussian of importance_sampling.moment_matched cannot. k
  samples in chunks of `chunk`.
  """
  if k % chunk:
    raise ValueError(f"chunk {chunk} must divide k {k}")
  keys = jax.random.split(key, x_BxD.shape[0])
  one = functools.partial(_kde_log_likelihood_one, params, as_model(model), k=k,
                          num_centres=num_centres, bandwidth=bandwidth, chunk=chunk)
  return jax.vmap(one)(keys, x_BxD)
