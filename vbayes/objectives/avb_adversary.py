"""AVB's adversary T_psi(x, z) and adaptive contrast's reference r(z|x) (vbayes/objectives/avb.py
states the method).

T(x, z) = f_psi(x, z) - log ref(z): an MLP f_psi over [x, z] minus the log-density of
what T tells q's samples from (the prior; N(0, I) for adaptive contrast, whose scored
samples are normalized by the moments (mu, sigma) of r(z|x) = N(mu(x), diag sigma^2(x))).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vbayes import distributions
from vbayes.models import Model, ModelConfig, as_model, nets

# `config: TrainConfig` below is the run's vbayes.config.TrainConfig, named in annotations
# only (postponed, PEP 563): vbayes.config imports the objectives, not the other way.

Params = dict


def run_model(config: TrainConfig, model: Model | None) -> Model:
  """`model`, or the Model config.model describes."""
  return as_model(config.model) if model is None else model


def init_adversary(key: jax.Array, config: TrainConfig, model: Model | None = None) -> Params:
  """T's network f_psi: [x, z] (D + L) -> hidden -> 1."""
  model = run_model(config, model)
  return nets.mlp_init(key, (model.data_dim + model.latent_dim,
                             *config.objective.adversary_hidden_sizes, 1))


def adversary_log_density(adv_params: Params, config: TrainConfig, x_D, z_L) -> jax.Array:
  """f_psi(x, z) = T(x, z) + log p(z): the adversary's estimate of log q(z|x) (plain AVB).

  At the adversary's optimum it is log q(z|x) exactly, so its exp integrates to
  1 over z; how far the integral is from 1 measures how well T has converged.
  (With adaptive contrast T compares normalized z~ with N(0, I) instead.)
  """
  return nets.mlp_apply(adv_params, jnp.concatenate([x_D, z_L]),
                        config.objective.adversary_activation)[0]


def adversary_logit(adv_params: Params, config: TrainConfig, x_D, z_L, log_ref) -> jax.Array:
  """T(x, z) = f_psi(x, z) - log ref(z): a scalar logit. ref is what T tells q's
  samples from: the prior p(z), or N(0, I) for adaptive contrast's normalized z~."""
  return adversary_log_density(adv_params, config, x_D, z_L) - log_ref(z_L)


def encoder_samples(params: Params, model: Model | ModelConfig, key: jax.Array, x_D, num: int):
  """z_k = g_phi(x, eps_k), eps_k ~ N(0, I_E): [num, L]."""
  return as_model(model).sample_proposal(params, key, x_D, num)


def contrast_reference(params: Params, config: TrainConfig, model: Model | None = None):
  """The distribution the adversary tells q's samples from: N(0, I) for the normalized
  samples of adaptive contrast, else the prior."""
  model = run_model(config, model)
  if config.objective.adaptive_contrast:
    return distributions.StdNormal(model.latent_dim)
  return model.prior_distribution(params)


def contrast_moments(params: Params, config: TrainConfig, key: jax.Array, x_D, z_KxL,
                     model: Model | None = None):
  """Adaptive contrast's (mu, sigma) for the scored samples z_KxL of one image.

  With config.objective.moment_samples = M > 0: the moments of M further encoder samples,
  drawn with `key` apart from the scored ones and held fixed (stop_gradient). The
  decomposition of log q - log p holds for any fixed r, so the estimate of KL(q || p)
  then carries only the bias of an adversary that cannot see the moments' noise:
  with q = p = N(0, I) and the optimal adversary, about -1/M nats per latent
  dimension (-0.008 at M = 128; tests/unit/test_avb.py computes it). With M = 0 (vbayes
  before this option) the moments of the K scored samples themselves: then
  -E[log sigma] alone adds +0.142 nats per dimension at K = 8 (+0.032 at K = 32,
  +0.008 at K = 128), and the optimal adversary's part +0.022 more at K = 8.
  """
  num = config.objective.moment_samples
  if num == 0:
    return distributions.sample_moments(z_KxL)
  return jax.lax.stop_gradient(
      distributions.sample_moments(encoder_samples(params, run_model(config, model), key, x_D,
                                                   num)))


def batch_contrast_moments(params, key, x_BxD, *, config: TrainConfig,
                           model: Model | None = None):
  """Adaptive contrast's moments of every image from M = config.objective.moment_samples separate
  encoder samples (one key per image): (mu_BxL, sigma_BxL), held fixed."""
  keys = jax.random.split(key, x_BxD.shape[0])
  return jax.vmap(lambda k, x: contrast_moments(params, config, k, x, None, model))(keys, x_BxD)
