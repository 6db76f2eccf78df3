"""Importance-weighted objectives, one image at a time (vmap over the batch).

IWAE (Burda et al. 2016), with the encoder as proposal:
    L_k(x) = log (1/k) sum_i w_i,   w_i = p(x, z_i) / q(z_i|x),   z_i = mu(x) + sigma(x) eps_i.
Prior importance sampling (the decoder alone, no encoder):
    L_K(x) = log (1/K) sum_i p(x|z_i),   z_i ~ p(z).

Encoder gradient estimators for IWAE, all with the same decoder gradient
sum_i w~_i grad_theta log w_i (w~ = normalized weights):
  reparam  the plain gradient of L_k (path and score terms);
  stl      "sticking the landing" (Roeder et al. 2017): log q is evaluated with its
           parameters behind stop_gradient, so only the path through z_i is left:
           sum_i w~_i  d log w_i / d z_i  dz_i / dphi;
  dreg     doubly reparameterized (Tucker et al. 2019, eq. 7): the same path
           derivative weighted by w~_i^2, unbiased for the IWAE gradient.
STL and DReG are written as surrogates whose value is L_k and whose gradient is
the estimator's.
"""

import functools
import math

import jax
import jax.numpy as jnp

from vbayes import distributions, models
from vbayes.config import ModelConfig

ESTIMATORS = ("reparam", "stl", "dreg")
sg = jax.lax.stop_gradient


def _log_weights(params, z_KxL, x_D, q_mean_L, q_log_var_L, model):
  """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x): [K]."""
  log_lik_K = jax.vmap(models.log_likelihood, in_axes=(None, None, 0, None))(
      params, model, z_KxL, x_D)
  return (log_lik_K + distributions.std_normal_log_prob(z_KxL)
          - distributions.diag_normal_log_prob(q_mean_L, q_log_var_L, z_KxL))


def iwae_from_noise(params, eps_KxL, x_D, *, model: ModelConfig, estimator: str = "reparam"):
  """The k-sample IWAE bound of one image, k = eps_KxL.shape[0].

  Returns {"bound": L_k, "surrogate": scalar whose gradient is the estimator's,
  "ess": effective sample size 1 / sum_i w~_i^2}.
  """
  mean_L, log_var_L = models.encode(params, model, x_D)
  z_KxL = mean_L + jnp.exp(0.5 * log_var_L) * eps_KxL
  k = eps_KxL.shape[0]
  log_w_K = _log_weights(params, z_KxL, x_D, mean_L, log_var_L, model)
  bound = jax.nn.logsumexp(log_w_K) - math.log(k)
  w_norm_K = sg(jax.nn.softmax(log_w_K))
  if estimator == "reparam":
    surrogate = bound
  elif estimator in ("stl", "dreg"):
    # Decoder: gradient of L_k with z held fixed. Encoder: path derivative only.
    log_w_dec_K = _log_weights(params, sg(z_KxL), x_D, sg(mean_L), sg(log_var_L), model)
    log_w_enc_K = _log_weights(sg(params), z_KxL, x_D, sg(mean_L), sg(log_var_L), model)
    coef_K = w_norm_K if estimator == "stl" else w_norm_K**2
    surrogate = jax.nn.logsumexp(log_w_dec_K) + jnp.sum(coef_K * log_w_enc_K)
    surrogate = surrogate - sg(surrogate) + sg(bound)  # value L_k, gradient unchanged
  else:
    raise ValueError(f"unknown estimator {estimator!r}: choose one of {ESTIMATORS}")
  return {"bound": bound, "surrogate": surrogate, "ess": 1.0 / jnp.sum(w_norm_K**2)}


def iwae(params, key, x_D, *, model: ModelConfig, k: int, estimator: str = "reparam"):
  """`iwae_from_noise` with eps_i ~ N(0, I) drawn from `key`."""
  eps_KxL = jax.random.normal(key, (k, model.latent_dim))
  return iwae_from_noise(params, eps_KxL, x_D, model=model, estimator=estimator)


def iwae_loss(params, key, x_BxD, *, model: ModelConfig, k: int, estimator: str = "reparam"):
  """-mean_b L_k(x_b); the k samples of all images are one [B, k, L] draw."""
  eps_BxKxL = jax.random.normal(key, (x_BxD.shape[0], k, model.latent_dim))
  out = jax.vmap(functools.partial(iwae_from_noise, model=model, estimator=estimator),
                 in_axes=(None, 0, 0))(params, eps_BxKxL, x_BxD)
  bound = jnp.mean(out["bound"])
  return -jnp.mean(out["surrogate"]), {"iwae_bound": bound, "ess": jnp.mean(out["ess"])}


def prior_is_from_samples(params, z_KxL, x_D, *, model: ModelConfig):
  """log (1/K) sum_i p(x|z_i) for prior samples z_i: an estimate of log p(x) from below."""
  log_lik_K = jax.vmap(models.log_likelihood, in_axes=(None, None, 0, None))(
      params, model, z_KxL, x_D)
  return jax.nn.logsumexp(log_lik_K) - math.log(z_KxL.shape[0])


def prior_is_loss(params, key, x_BxD, *, model: ModelConfig, k: int):
  """-mean_b log (1/K) sum_i p(x_b|z_bi), z_bi ~ N(0, I): the decoder trained alone."""
  z_BxKxL = jax.random.normal(key, (x_BxD.shape[0], k, model.latent_dim))
  bound_B = jax.vmap(functools.partial(prior_is_from_samples, model=model),
                     in_axes=(None, 0, 0))(params, z_BxKxL, x_BxD)
  bound = jnp.mean(bound_B)
  return -bound, {"prior_is_bound": bound}
