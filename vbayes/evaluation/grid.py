"""Exact computations for 2-D latents on a grid: log p(x) by quadrature, the
normalized posterior p(z | x) (of all pixels or of an observed subset), and KL
divergences between densities evaluated on the grid.

One routine, `log_joint_on_grid`, evaluates log p(x, z) at every grid point;
quadrature reduces it with a running log-sum-exp over grid chunks, the posterior
normalizes it. Both accept a 0/1 pixel mask, so p(x_top) and p(z | x_top) come
from the same code as the full-image quantities.
"""

import functools
import math

import jax
import jax.numpy as jnp

from vbayes import distributions, precision
from vbayes.config import ModelConfig
from vbayes.models import Model, as_model
from vbayes.numerics import largest_divisor_at_most, logsumexp_over_chunks
from vbayes.progress import Progress

# Entries of one [B, C] chunk of the log-joint, or of the Gaussian likelihood's
# [B, C, D] squared differences; bounds memory at ~16 MB of float32.
MAX_CHUNK_ENTRIES = 1 << 22
MIN_CHUNK_POINTS = 64  # quadrature splits the images so that a chunk holds at least this


def latent_grid(limit: float, points: int, center_2=None):
  """A points x points grid of cell midpoints tiling center + [-limit, limit]^2.

  Returns (z_Gx2, log cell area), g row-major over (z2, z1): z1 varies fastest.
  Cell midpoints make a sum over the grid a midpoint rule.
  """
  width = 2.0 * limit / points
  axis = -limit + width * (jnp.arange(points) + 0.5)
  z1, z2 = jnp.meshgrid(axis, axis, indexing="xy")
  z_Gx2 = jnp.stack([z1.ravel(), z2.ravel()], axis=-1)
  if center_2 is not None:
    z_Gx2 = z_Gx2 + jnp.asarray(center_2, z_Gx2.dtype)
  return z_Gx2, 2.0 * math.log(width)


def _log_joint_chunk(params, model: Model, z_Cx2, x_BxD, pixel_mask_D):
  """log p(x_b, z_c) = log p(x_b | z_c) + log p(z_c): [B, C]."""
  return (model.log_likelihood_matrix(params, z_Cx2, x_BxD, pixel_mask_D)
          + model.log_prior(params, z_Cx2)[None, :])


def _entries_per_pair(model: Model) -> int:
  """Floats that Model.log_likelihood_matrix holds per (image, grid point) pair
  (one for the Bernoulli likelihood, D squared differences for the Gaussian)."""
  return model.likelihood.entries_per_pair(model.data_dim)


def _grid_chunks(limit: float, points: int, batch: int, center_2=None, per_pair: int = 1):
  """The grid split into N chunks of C points, C dividing G, with
  B * C * per_pair <= MAX_CHUNK_ENTRIES (or C = 1)."""
  z_Gx2, log_area = latent_grid(limit, points, center_2)
  chunk = largest_divisor_at_most(points * points,
                                  max(1, MAX_CHUNK_ENTRIES // (batch * per_pair)))
  return z_Gx2.reshape(-1, chunk, 2), log_area


def _check_2d(model: Model):
  if model.latent_dim != 2:
    raise ValueError(f"grid computations need latent_dim 2, got {model.latent_dim}")


@functools.partial(jax.jit, static_argnames=("model", "limit", "points"))
@precision.estimates
def log_joint_on_grid(params, x_BxD, *, model: Model | ModelConfig, limit: float, points: int,
                      center_2=None, pixel_mask_D=None):
  """log p(x_b, z_g) on the grid of `latent_grid`: [B, G].

  The decoder runs once per grid point. With `pixel_mask_D` only the observed
  pixels enter the likelihood: log p(x_obs, z).
  """
  model = as_model(model)
  _check_2d(model)
  z_NxCx2, _ = _grid_chunks(limit, points, x_BxD.shape[0], center_2, _entries_per_pair(model))
  out_NxBxC = jax.lax.map(
      lambda z_Cx2: _log_joint_chunk(params, model, z_Cx2, x_BxD, pixel_mask_D), z_NxCx2)
  return jnp.moveaxis(out_NxBxC, 0, 1).reshape(x_BxD.shape[0], -1)


@functools.partial(jax.jit, static_argnames=("model",))
@precision.estimates
def _log_sum_over_chunks(params, x_BxD, z_NxCx2, pixel_mask_D=None, *, model: Model):
  """logsumexp over the N * C points z of log p(x_b, z): [B], a running sum over chunks."""
  chunk_terms = lambda z_Cx2: (_log_joint_chunk(params, model, z_Cx2, x_BxD, pixel_mask_D), None)
  return logsumexp_over_chunks(chunk_terms, z_NxCx2)[0]


def quadrature_log_likelihood(params, x_BxD, *, model: Model | ModelConfig, limit: float = 5.0,
                              points: int = 512, pixel_mask_D=None, log=None):
  """log p(x) = log int p(x|z) p(z) dz ~= logsumexp_g log p(x, z_g) + log(cell area).

  Midpoint rule on `latent_grid`: exact up to the grid, for 2-D latents only. The
  prior mass outside [-limit, limit]^2 is left out (1.1e-6 of it for limit 5 and the
  N(0, I) prior; a prior elsewhere or wider needs a larger limit). A
  running log-sum-exp over grid chunks keeps memory at O(B * chunk). With
  `pixel_mask_D`, the marginal likelihood of the observed pixels, log p(x_obs).
  The grid goes through in up to 16 bands of chunks, one jitted call each; with
  `log`, a progress line (rate, ETA) between calls at most every 10 s.
  """
  model = as_model(model)
  _check_2d(model)
  per_pair = _entries_per_pair(model)
  # Images go through in blocks small enough that a chunk holds MIN_CHUNK_POINTS grid
  # points (one block for the Bernoulli likelihood up to 65536 images).
  block = max(1, MAX_CHUNK_ENTRIES // (per_pair * MIN_CHUNK_POINTS))
  starts = range(0, x_BxD.shape[0], block)
  progress = Progress("quadrature", total=len(starts) * points * points, unit="grid points",
                      log=log)
  out = []
  for i, image_start in enumerate(starts):
    x_block = x_BxD[image_start:image_start + block]
    z_NxCx2, log_area = _grid_chunks(limit, points, x_block.shape[0], per_pair=per_pair)
    num_chunks, chunk = z_NxCx2.shape[:2]
    per_band = num_chunks // largest_divisor_at_most(num_chunks, 16)
    log_sum = jnp.full((x_block.shape[0],), -jnp.inf)
    for start in range(0, num_chunks, per_band):
      band = _log_sum_over_chunks(params, x_block, z_NxCx2[start:start + per_band],
                                  pixel_mask_D, model=model)
      log_sum = jnp.logaddexp(log_sum, band)
      progress.update(i * points * points + (start + per_band) * chunk, wait_for=log_sum)
    out.append(log_sum + log_area)
  return jnp.concatenate(out)


def posterior_on_grid(params, x_BxD, *, model: Model | ModelConfig, limit: float, points: int,
                      center_2=None, pixel_mask_D=None):
  """log P_bg = log p(x_b, z_g) - logsumexp_g' log p(x_b, z_g'): the exact posterior
  p(z | x_b) as log probability masses of the grid cells (each row sums to 1).

  With `pixel_mask_D`, the posterior given the observed pixels, p(z | x_obs).
  The density at z_g is exp(log P_bg - log cell area). Returns (log_P_BxG, z_Gx2, log_area).
  """
  log_joint_BxG = log_joint_on_grid(params, x_BxD, model=model, limit=limit, points=points,
                                    center_2=center_2, pixel_mask_D=pixel_mask_D)
  z_Gx2, log_area = latent_grid(limit, points, center_2)
  return jax.nn.log_softmax(log_joint_BxG, axis=-1), z_Gx2, log_area


def diag_normal_on_grid(mean_BxL, log_var_BxL, z_Gx2):
  """log Q_bg: the Gaussian q_b = N(m_b, diag v_b) as log masses of the grid cells [B, G].

  The density at the cell midpoints, normalized over the grid (midpoint rule).
  """
  log_q_BxG = distributions.DiagNormal(mean_BxL, log_var_BxL).log_prob(
      jnp.broadcast_to(z_Gx2, (mean_BxL.shape[0], *z_Gx2.shape)))
  return jax.nn.log_softmax(log_q_BxG, axis=-1)


def kl_on_grid(log_p_BxG, log_q_BxG):
  """KL(P || Q) = sum_g P_g (log P_g - log Q_g) for masses on the same grid: [B].

  With masses from `posterior_on_grid` / `diag_normal_on_grid` this is the
  midpoint-rule value of KL between the densities (the cell areas cancel). Cells
  where P_g = 0 contribute 0.
  """
  p_BxG = jnp.exp(log_p_BxG)
  return jnp.sum(jnp.where(p_BxG > 0, p_BxG * (log_p_BxG - log_q_BxG), 0.0), axis=-1)
