"""What a trained model does in its latent space: prior samples, encoder means and
reconstructions, interpolation, the exact posterior of a partly observed image
against a variational one, and completion of the unobserved pixels.

Each function takes parameters, explicit keys and arrays and returns arrays; the
figures are drawn by `vbayes.plots`, the experiments in experiments/ join the two.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vbayes import distributions, precision, svi
from vbayes.evaluation import grid
from vbayes.config import ModelConfig
from vbayes.models import Model, as_model


@functools.partial(jax.jit, static_argnames=("model", "num"))
@precision.estimates
def prior_samples(params, key, *, model: Model | ModelConfig, num: int):
  """z_n ~ p(z); returns (z_NxL, E[x | z_n] [N, D], x_n ~ p(x | z_n) [N, D])."""
  model = as_model(model)
  z_key, x_key = jax.random.split(key)
  z_NxL = model.prior_distribution(params).sample(z_key, num)
  samples = jax.vmap(model.sample_image, in_axes=(None, 0, 0))(
      params, jax.random.split(x_key, num), z_NxL)
  return z_NxL, model.mean_image(params, z_NxL), samples


@functools.partial(jax.jit, static_argnames=("model", "num"))
@precision.estimates
def posterior_samples(params, key, x_D, *, model: Model | ModelConfig, num: int):
  """z_n ~ q(z | x), n = 1..num: [num, L], for a Gaussian or an implicit encoder."""
  return as_model(model).sample_proposal(params, key, x_D, num)


@functools.partial(jax.jit, static_argnames=("model", "num"))
@precision.estimates
def posterior_means(params, key, x_NxD, *, model: Model | ModelConfig, num: int = 100):
  """E_q[z | x_n] for every image: the mean of q where it has a density, else (an
  implicit encoder) the mean of `num` of its samples. [N, L]"""
  model = as_model(model)
  if model.has_proposal_density:
    return encoder_means(params, x_NxD, model=model, batch_size=min(1000, x_NxD.shape[0]))
  keys = jax.random.split(key, x_NxD.shape[0])
  sample_mean = lambda k, x: jnp.mean(model.sample_proposal(params, k, x, num), axis=0)
  return jax.lax.map(lambda kx: sample_mean(*kx), (keys, x_NxD),
                     batch_size=min(1000, x_NxD.shape[0]))


@functools.partial(jax.jit, static_argnames=("model", "batch_size"))
@precision.estimates
def encoder_means(params, x_NxD, *, model: Model | ModelConfig, batch_size: int = 1000):
  """E_q[z | x_n], the encoder's mean for every image: [N, L], in batches of `batch_size`
  (for a q without a closed-form mean, the mean of 1000 draws from a fixed key)."""
  model = as_model(model)
  if not model.has_encoder:
    raise ValueError("the model has no encoder (it was trained by prior importance "
                     "sampling): there are no encoder means")
  mean_fn = lambda x_D: distributions.mean_or_sample_mean(
      model.proposal_distribution(params, x_D), jax.random.key(0), 1000)
  return jax.lax.map(mean_fn, x_NxD, batch_size=batch_size)


@functools.partial(jax.jit, static_argnames=("model",))
@precision.estimates
def reconstructions(params, x_NxD, *, model: Model | ModelConfig):
  """E[x | z = E_q[z | x]]: each image decoded at its encoder mean, [N, D]."""
  return as_model(model).mean_image(params, encoder_means(params, x_NxD, model=model))


@functools.partial(jax.jit, static_argnames=("model", "steps"))
@precision.estimates
def interpolate(params, x_a_D, x_b_D, *, model: Model | ModelConfig, steps: int):
  """E[x | z_t] along z_t = (1 - t) mu(x_a) + t mu(x_b), t = 0, 1/(T-1), ..., 1: [T, D].

  mu is the encoder mean, so the ends are the two images' reconstructions.
  """
  mu_2xL = encoder_means(params, jnp.stack([x_a_D, x_b_D]), model=model)
  t_T1 = jnp.linspace(0.0, 1.0, steps)[:, None]
  return as_model(model).mean_image(params, (1.0 - t_T1) * mu_2xL[0] + t_T1 * mu_2xL[1])


def complete(params, key, x_BxD, mask_D, *, model: Model | ModelConfig, num_completions: int,
             steps: int = 2000, svi_samples: int = 16, learning_rate: float = 1e-2,
             restarts: int = 16, log=None):
  """Fills in the unobserved pixels of each image from p(z | x_obs).

  q_b(z) = N(m_b, diag v_b) is fitted to p(z | x_obs,b) by stochastic VI
  (`svi.fit_posterior_restarts`: the best of `restarts` fits); then z_bs ~ q_b for
  s = 1..S, and the completion keeps the observed pixels and takes E[x | z_bs] for
  the rest:
      x^_bs = mask * x_b + (1 - mask) * E[x | z_bs].
  Returns a dict: completions [B, S, D], average [B, D] (the observed pixels
  with the mean of E[x | z_bs] over s below), q_mean, q_log_var [B, L] and
  elbo_trace [steps, B].
  """
  fit_key, sample_key = jax.random.split(key)
  q_mean, q_log_var, trace = svi.fit_posterior_restarts(
      params, fit_key, x_BxD, mask_D, model=model, restarts=restarts, steps=steps,
      num_samples=svi_samples, learning_rate=learning_rate, log=log)
  return _complete_from_q(params, sample_key, x_BxD, mask_D, q_mean, q_log_var, trace,
                          model=model, num_completions=num_completions)


@functools.partial(jax.jit, static_argnames=("model", "num_completions"))
@precision.estimates
def _complete_from_q(params, key, x_BxD, mask_D, q_mean, q_log_var, trace, *, model,
                     num_completions):
  z_BxSxL = distributions.DiagNormal(q_mean, q_log_var).sample(key, num_completions)
  means_BxSxD = as_model(model).mean_image(params, z_BxSxL)
  observed = mask_D * x_BxD
  return {"completions": observed[:, None] + (1.0 - mask_D) * means_BxSxD,
          "average": observed + (1.0 - mask_D) * means_BxSxD.mean(axis=1),
          "q_mean": q_mean, "q_log_var": q_log_var, "elbo_trace": trace}


def posterior_vs_gaussian(params, x_D, q_mean_L, q_log_var_L, *, model: Model | ModelConfig,
                          pixel_mask_D=None, points: int = 400, search_limit: float = 5.0,
                          search_points: int = 128, tail_mass: float = 1e-4) -> dict:
  """The exact posterior p(z | x_obs) and a Gaussian q on one grid fitted to both.

  A coarse grid over [-search_limit, search_limit]^2 finds where p has all but
  `tail_mass` of its mass; the fine points x points grid covers that region and
  q's mean +- 5 sd, so both are resolved however narrow they are. On it,
  P_g and Q_g are the normalized cell masses (`grid.posterior_on_grid`,
  `grid.diag_normal_on_grid`) and
      KL(q || p) = sum_g Q_g log(Q_g / P_g),  KL(p || q) = sum_g P_g log(P_g / Q_g).
  Returns a dict: axis [points] (the grid's coordinates on either axis, before
  centring), center [2], log_p and log_q [points, points] (row i: z2 = center_2 +
  axis_i), kl_qp, kl_pq.
  """
  x_1xD = jnp.asarray(x_D)[None]
  log_p_coarse, z_coarse, _ = grid.posterior_on_grid(
      params, x_1xD, model=model, limit=search_limit, points=search_points,
      pixel_mask_D=pixel_mask_D)
  p = np.exp(np.asarray(log_p_coarse[0]))
  order = np.argsort(p)[::-1]
  keep = order[:np.searchsorted(np.cumsum(p[order]), 1.0 - tail_mass) + 1]
  cell = 2.0 * search_limit / search_points
  z_keep = np.asarray(z_coarse)[keep]
  q_mean, q_sd = np.asarray(q_mean_L), np.exp(0.5 * np.asarray(q_log_var_L))
  low = np.minimum(z_keep.min(axis=0) - cell, q_mean - 5.0 * q_sd)
  high = np.maximum(z_keep.max(axis=0) + cell, q_mean + 5.0 * q_sd)
  center = (low + high) / 2.0
  limit = float(np.round(max(high - low) / 2.0 * 1.05, 3))  # rounded: few recompilations
  log_p, z_Gx2, _ = grid.posterior_on_grid(
      params, x_1xD, model=model, limit=limit, points=points,
      center_2=jnp.asarray(center, jnp.float32), pixel_mask_D=pixel_mask_D)
  log_q = grid.diag_normal_on_grid(jnp.asarray(q_mean_L)[None], jnp.asarray(q_log_var_L)[None],
                                   z_Gx2)
  axis, _ = grid.latent_grid(limit, points)
  return {"axis": np.asarray(axis[:points, 0]), "center": center,
          "log_p": np.asarray(log_p[0]).reshape(points, points),
          "log_q": np.asarray(log_q[0]).reshape(points, points),
          "kl_qp": float(grid.kl_on_grid(log_q, log_p)[0]),
          "kl_pq": float(grid.kl_on_grid(log_p, log_q)[0])}
