"""Densities of the latent space and of pixels.

Per-example log-densities (vmap them for batches):
    bernoulli_log_prob(logits, x)       sum_d x_d l_d - softplus(l_d)
    gaussian_log_prob(mean, log_scale, x)
    std_normal_log_prob(z), diag_normal_log_prob(mean, log_var, z)
    kl_diag_normal_std_normal(mean, log_var)

Latent distributions:
    StdNormal(dim)              N(0, I) (holds no arrays)
    DiagNormal(mean, log_var)   N(m, diag exp(log_var)), reparameterized: a pytree, so
                                jit, vmap and stop_gradient see its arrays
    DiagNormalMixture(mean, log_var)  (1/C) sum_c N(m_c, diag v_c), C equal components
    Broadcast(dist, shape)      any distribution repeated over a batch
Each has `sample(key, shape)`, `log_prob(z)` and `sample_and_log_prob(key, shape)` (the
draws with their log-density, which a flow computes on the way forward), with one
convention for shapes:
a distribution of batch shape [...] (its mean's shape without the last axis)
draws samples [..., *shape, L], and `log_prob` of z [..., *extra, L] is
[..., *extra]; so a batch of B encoder outputs gives z [B, K, L] and log q [B, K].
A reparameterized distribution (DiagNormal, and the hierarchical and flow posteriors of
vbayes.models) also has `noise(key, shape)`, `draw(eps)` and `draw_and_log_prob(eps)`:
z as a differentiable function of its parameters given eps ~ N(0, I).
`kl_divergence(q, p)` is the closed form where one is known; `kl_or_monte_carlo` falls
back to a sample estimate.

All Bernoulli densities take logits, never probabilities, so that
log p = x * l - softplus(l) stays finite for any logit l.
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vbayes import precision
from vbayes.numerics import LOG_2PI, softplus


def _masked_sum(terms_D, mask_D):
  return jnp.sum(terms_D if mask_D is None else terms_D * mask_D, axis=-1)


def bernoulli_log_prob(logits_D: jax.Array, x_D: jax.Array, mask_D=None) -> jax.Array:
  """log p(x | l) = sum_d m_d [x_d l_d - softplus(l_d)], with p(x_d = 1) = sigmoid(l_d).

  Uses log sigmoid(l) = l - softplus(l) and log(1 - sigmoid(l)) = -softplus(l).
  The 0/1 mask m (all ones if None) keeps the observed pixels: log p(x_obs | l).
  """
  return _masked_sum(x_D * logits_D - softplus(logits_D), mask_D)


def gaussian_log_prob(mean_D, log_scale_D, x_D, mask_D=None) -> jax.Array:
  """log N(x; m, diag(s^2)) = -sum_d [ (x_d - m_d)^2 / (2 s_d^2) + log s_d + log(2 pi) / 2 ].

  The 0/1 mask (all ones if None) keeps only the observed coordinates' terms.
  """
  standardized = (x_D - mean_D) * jnp.exp(-log_scale_D)
  return -_masked_sum(0.5 * standardized**2 + log_scale_D + 0.5 * LOG_2PI, mask_D)


def std_normal_log_prob(z_L: jax.Array) -> jax.Array:
  """log N(z; 0, I) = -sum_l [ z_l^2 / 2 + log(2 pi) / 2 ]."""
  return -0.5 * jnp.sum(z_L**2 + LOG_2PI, axis=-1)


def diag_normal_log_prob(mean_L, log_var_L, z_L) -> jax.Array:
  """log N(z; m, diag(v)) with v = exp(log_var), summed over the last axis."""
  return gaussian_log_prob(mean_L, 0.5 * log_var_L, z_L)


def kl_diag_normal_std_normal(mean_L, log_var_L) -> jax.Array:
  """KL(N(m, diag(v)) || N(0, I)) = 1/2 sum_l [ v_l + m_l^2 - 1 - log v_l ].

  Kingma & Welling (2014), Appendix B. `expm1` keeps the v - 1 - log v part
  accurate when v is near 1 (a collapsed, inactive unit).
  """
  return 0.5 * jnp.sum(jnp.expm1(log_var_L) - log_var_L + mean_L**2, axis=-1)


def kl_diag_normals(mean_q, log_var_q, mean_p, log_var_p) -> jax.Array:
  """KL(N(m_q, diag v_q) || N(m_p, diag v_p))
       = 1/2 sum_l [ v_q / v_p - 1 - log(v_q / v_p) + (m_q - m_p)^2 / v_p ]."""
  log_ratio = log_var_q - log_var_p
  return 0.5 * jnp.sum(jnp.expm1(log_ratio) - log_ratio
                       + (mean_q - mean_p) ** 2 * jnp.exp(-log_var_p), axis=-1)


MIN_SD = 1e-4  # floor on a sample sd (a collapsed q would divide by 0)


def sample_moments(z_xKxL: jax.Array, min_sd: float = MIN_SD):
  """mu = mean_k z_k, sigma = sqrt(mean_k (z_k - mu)^2) (at least min_sd), over the sample
  axis -2: the moments of a Gaussian matched to samples, each [..., L]."""
  mean = jnp.mean(z_xKxL, axis=-2)
  sd = jnp.maximum(jnp.sqrt(jnp.mean((z_xKxL - mean[..., None, :]) ** 2, axis=-2)), min_sd)
  return mean, sd


class FromNoise:
  """draw, sample and sample_and_log_prob of a reparameterized distribution, from its own
  noise(key, shape) and draw_and_log_prob(eps) (the hierarchical and flow posteriors)."""

  def draw(self, eps):
    return self.draw_and_log_prob(eps)[0]

  def sample(self, key: jax.Array, shape=()):
    return self.draw(self.noise(key, shape))

  def sample_and_log_prob(self, key: jax.Array, shape=()):
    return self.draw_and_log_prob(self.noise(key, shape))


def _sample_shape(shape) -> tuple[int, ...]:
  return (shape,) if isinstance(shape, int) else tuple(shape)


def _with_sample_axes(a_xL: jax.Array, extra: int) -> jax.Array:
  """[..., L] -> [..., 1 (extra times), L], to broadcast against samples."""
  return a_xL.reshape(a_xL.shape[:-1] + (1,) * extra + a_xL.shape[-1:])


@functools.partial(jax.tree_util.register_dataclass, data_fields=[], meta_fields=["dim"])
@dataclasses.dataclass(frozen=True)
class StdNormal:
  """p(z) = N(0, I_L): batch shape []. It holds no arrays (a pytree without leaves)."""
  dim: int

  def sample(self, key: jax.Array, shape=()) -> jax.Array:
    return jax.random.normal(key, (*_sample_shape(shape), self.dim))

  def log_prob(self, z_xL: jax.Array) -> jax.Array:
    return std_normal_log_prob(z_xL)

  def sample_and_log_prob(self, key: jax.Array, shape=()):
    z = self.sample(key, shape)
    return z, self.log_prob(z)


class DiagNormal(NamedTuple):
  """N(m, diag exp(log_var)), mean and log_var [..., L]: batch shape [...].

  draw(eps) = m + exp(log_var / 2) * eps is the reparameterized draw: z is a
  differentiable function of (m, log_var) given the noise eps ~ N(0, I).
  """
  mean: jax.Array
  log_var: jax.Array

  def draw(self, eps: jax.Array) -> jax.Array:
    """z [..., *S, L] = m + exp(log_var / 2) * eps for noise eps [..., *S, L]."""
    extra = eps.ndim - self.mean.ndim
    return (_with_sample_axes(self.mean, extra)
            + _with_sample_axes(jnp.exp(0.5 * self.log_var), extra) * eps)

  def noise(self, key: jax.Array, shape=()) -> jax.Array:
    """eps ~ N(0, I) of shape [..., *shape, L]."""
    return jax.random.normal(key, (*self.mean.shape[:-1], *_sample_shape(shape),
                                   self.mean.shape[-1]), self.mean.dtype)

  def sample(self, key: jax.Array, shape=()) -> jax.Array:
    return self.draw(self.noise(key, shape))

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log N(z; m, diag v) for z [..., *S, L]: [..., *S]."""
    extra = z.ndim - self.mean.ndim
    return diag_normal_log_prob(_with_sample_axes(self.mean, extra),
                                _with_sample_axes(self.log_var, extra), z)

  def draw_and_log_prob(self, eps: jax.Array):
    """(z, log q(z)) for z = draw(eps): log q(z) = log N(eps; 0, I) - sum_l log_var_l / 2,
    the change of variables through z = m + sigma * eps."""
    extra = eps.ndim - self.mean.ndim
    log_det = 0.5 * jnp.sum(_with_sample_axes(self.log_var, extra), axis=-1)
    return self.draw(eps), std_normal_log_prob(eps) - log_det

  def sample_and_log_prob(self, key: jax.Array, shape=()):
    return self.draw_and_log_prob(self.noise(key, shape))


class DiagNormalMixture(NamedTuple):
  """p(z) = (1/C) sum_c N(z; m_c, diag v_c), mean and log_var [C, L]: batch shape [].

      log p(z) = logsumexp_c log N(z; m_c, diag v_c) - log C,
      log N(z; m, diag v) = -1/2 sum_l [ (z_l - m_l)^2 / v_l + log v_l + log 2 pi ].

  Every component's squared distance is expanded into matrix products,
  sum_l z_l^2 / v_l - 2 z_l m_l / v_l + m_l^2 / v_l, with z and the means centred on
  the means' average: one [N, L] x [L, C] product instead of an [N, C, L] array. The
  expansion loses precision to cancellation in float32 when v is small (0.5 nats for
  sd 0.01 in 50 dimensions), so the EXACT_COMPONENTS largest terms of each z are
  recomputed from their differences, and these dominate the sum wherever the others'
  errors matter (narrow components are far apart in log-density; 500 components of sd
  0.01 in two tight clusters, where hundreds of them matter, still come within 0.03
  nats of float64, tests/unit/test_vamp_prior.py). Samples pick a
  component uniformly, then draw from it (not reparameterized through the choice).
  """
  mean: jax.Array
  log_var: jax.Array

  EXACT_COMPONENTS = 8

  def log_prob(self, z_xL: jax.Array) -> jax.Array:
    with jax.default_matmul_precision(precision.ESTIMATES):  # in training too: the
      return self._log_prob(z_xL)  # expansion cancels; bfloat16 would lose nats

  def _log_prob(self, z_xL: jax.Array) -> jax.Array:
    num, dim = self.mean.shape
    centre_L = jax.lax.stop_gradient(jnp.mean(self.mean, axis=0))
    z_NxL = z_xL.reshape(-1, dim) - centre_L
    mean_CxL = self.mean - centre_L
    precision_CxL = jnp.exp(-self.log_var)
    log_norm_C = -0.5 * (jnp.sum(self.log_var, axis=-1) + dim * LOG_2PI)
    squared_NxC = (z_NxL**2 @ precision_CxL.T - 2.0 * z_NxL @ (mean_CxL * precision_CxL).T
                   + jnp.sum(mean_CxL**2 * precision_CxL, axis=-1))
    approx_NxC = log_norm_C - 0.5 * squared_NxC
    top = min(self.EXACT_COMPONENTS, num)
    _, index_NxT = jax.lax.top_k(jax.lax.stop_gradient(approx_NxC), top)
    diff_NxTxL = z_NxL[:, None, :] - mean_CxL[index_NxT]
    exact_NxT = log_norm_C[index_NxT] - 0.5 * jnp.sum(
        diff_NxTxL**2 * precision_CxL[index_NxT], axis=-1)
    rows_Nx1 = jnp.arange(index_NxT.shape[0])[:, None]
    rest_NxC = approx_NxC.at[rows_Nx1, index_NxT].set(-jnp.inf)  # each term counted once
    log_p_N = jax.nn.logsumexp(jnp.concatenate([exact_NxT, rest_NxC], axis=-1), axis=-1)
    return (log_p_N - jnp.log(num)).reshape(z_xL.shape[:-1])

  def sample(self, key: jax.Array, shape=()) -> jax.Array:
    pick_key, noise_key = jax.random.split(key)
    shape = _sample_shape(shape)
    c = jax.random.randint(pick_key, shape, 0, self.mean.shape[0])
    eps = jax.random.normal(noise_key, (*shape, self.mean.shape[-1]), self.mean.dtype)
    return self.mean[c] + jnp.exp(0.5 * self.log_var[c]) * eps

  def sample_and_log_prob(self, key: jax.Array, shape=()):
    z = self.sample(key, shape)
    return z, self.log_prob(z)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["dist"],
                   meta_fields=["batch_shape"])
@dataclasses.dataclass(frozen=True)
class Broadcast:
  """`dist` repeated over a batch: sample(key, shape) draws [*batch_shape, *shape, L]."""
  dist: object
  batch_shape: tuple[int, ...]

  def sample(self, key: jax.Array, shape=()) -> jax.Array:
    return self.dist.sample(key, (*self.batch_shape, *_sample_shape(shape)))

  def log_prob(self, z: jax.Array) -> jax.Array:
    return self.dist.log_prob(z)

  def sample_and_log_prob(self, key: jax.Array, shape=()):
    return self.dist.sample_and_log_prob(key, (*self.batch_shape, *_sample_shape(shape)))


def mean_or_sample_mean(q, key: jax.Array, samples: int) -> jax.Array:
  """E_q[z], [..., L]: the mean of a diagonal Gaussian q, else the mean of `samples` draws
  from `key` (a hierarchical or flow posterior has no closed-form mean)."""
  if isinstance(q, DiagNormal):
    return q.mean
  return jnp.mean(q.sample(key, samples), axis=-2)


def kl_divergence(q, p) -> jax.Array:
  """KL(q || p) in closed form, for q a DiagNormal and p a StdNormal or DiagNormal.

  Raises NotImplementedError for other pairs: estimate the KL by sampling instead.
  """
  if isinstance(q, DiagNormal) and isinstance(p, StdNormal):
    return kl_diag_normal_std_normal(q.mean, q.log_var)
  if isinstance(q, DiagNormal) and isinstance(p, DiagNormal):
    return kl_diag_normals(q.mean, q.log_var, p.mean, p.log_var)
  raise NotImplementedError(f"no closed-form KL({type(q).__name__} || {type(p).__name__})")


def kl_or_monte_carlo(q, p, draw) -> jax.Array:
  """KL(q || p): the closed form where `kl_divergence` knows one, else the Monte Carlo
  estimate mean_s [log q(z_s) - log p(z_s)] over the samples (z, log q(z)) = draw() of
  q, z [..., S, L] (draw is called only then; `q.sample_and_log_prob` is one)."""
  try:
    return kl_divergence(q, p)
  except NotImplementedError:
    z, log_q = draw()
    return jnp.mean(log_q - p.log_prob(z), axis=-1)
