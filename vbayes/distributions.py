"""Log-densities and the Gaussian KL, each for one example (vmap for batches).

All Bernoulli densities take logits, never probabilities, so that
log p = x * l - softplus(l) stays finite for any logit l.
"""

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


@jax.custom_jvp
def softplus(l: jax.Array) -> jax.Array:
  """log(1 + e^l) = max(l, 0) + log1p(e^{-|l|}): finite for every finite l.

  The same function as jax.nn.softplus, written so that XLA's CPU backend
  vectorizes it (about 7x faster there on a [25000, 784] block). Its derivative
  is declared as sigmoid(l): differentiating max and |.| would give 0 at l = 0.
  """
  return jnp.maximum(l, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(l)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
  (l,), (dl,) = primals, tangents
  return softplus(l), jax.nn.sigmoid(l) * dl


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


def diag_normal_sample(key: jax.Array, mean_L, log_var_L) -> jax.Array:
  """z = m + exp(log_var / 2) * eps, eps ~ N(0, I): the reparameterized draw."""
  eps = jax.random.normal(key, jnp.shape(mean_L), dtype=jnp.result_type(mean_L))
  return mean_L + jnp.exp(0.5 * log_var_L) * eps


def kl_diag_normal_std_normal(mean_L, log_var_L) -> jax.Array:
  """KL(N(m, diag(v)) || N(0, I)) = 1/2 sum_l [ v_l + m_l^2 - 1 - log v_l ].

  Kingma & Welling (2014), Appendix B. `expm1` keeps the v - 1 - log v part
  accurate when v is near 1 (a collapsed, inactive unit).
  """
  return 0.5 * jnp.sum(jnp.expm1(log_var_L) - log_var_L + mean_L**2, axis=-1)
