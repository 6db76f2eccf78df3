"""Held-out evaluation: importance-sampled log p(x), grid quadrature for 2-D
latents (from `grid`), ELBO and its parts, active units.

Memory stays bounded for any number of samples k: the k samples are drawn in
chunks inside a `lax.scan` that carries a running log-sum-exp, and images go
through in batches.
"""

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vbayes import data as data_lib
from vbayes import avb, distributions, grid, models
from vbayes.config import ModelConfig
from vbayes.progress import Progress

# Decoder rows (samples x images) evaluated per scan step: 2000 x 784 float32 =
# 6 MB of logits. On the 2-core CPU, in fresh processes, k=5000 for 100 images of
# a 784-500-500-50 model took 1.77-1.95 s with 1000 to 5000 rows and 1.96-2.15 s
# with 10000 (see the README's Benchmark). Accelerators may want more
# (evaluate's rows_per_chunk).
MAX_ROWS_PER_CHUNK = 2_000


@functools.partial(jax.jit, static_argnames=("model", "k", "chunk"))
def importance_sampled_log_likelihood(params, key, x_BxD, *, model: ModelConfig, k: int,
                                      chunk: int, proposal_BxL=None):
  """log p(x) ~= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)  (Burda et al. 2016).

  For a model without an encoder q is the prior, and this is prior importance
  sampling, log (1/k) sum_i p(x|z_i). `proposal_BxL`, if given, is another
  diagonal Gaussian proposal as (mean, log-variance), e.g. AVB's moment-matched
  r(z|x). Also returns the k-sample mean of log p(x|z_i), the reconstruction
  term of the ELBO when q is the proposal. `chunk` must divide k.
  Returns (log_px_B, mean_log_lik_B).
  """
  if k % chunk:
    raise ValueError(f"chunk {chunk} must divide k {k}")
  if proposal_BxL is None:
    proposal_BxL = jax.vmap(models.encode, in_axes=(None, None, 0))(params, model, x_BxD)
  mean_BxL, log_var_BxL = proposal_BxL

  def body(carry, i):
    log_sum_B, lik_sum_B = carry
    eps_BxCxL = jax.random.normal(jax.random.fold_in(key, i), (mean_BxL.shape[0], chunk,
                                                               mean_BxL.shape[1]))
    z_BxCxL = mean_BxL[:, None] + jnp.exp(0.5 * log_var_BxL)[:, None] * eps_BxCxL
    # The barrier keeps XLA from merging the two sums over log_lik (over pixels,
    # then samples) into one reduction, which would write out every pixel's term
    # (with the broadcast likelihood it did: 2.40-2.58 s against 1.95-1.99 s for
    # 100 images at k=5000 on 2 CPU cores; with the contraction, equal time).
    log_lik_BxC = jax.lax.optimization_barrier(
        models.log_likelihood_of_samples(params, model, z_BxCxL, x_BxD))
    log_w_BxC = (log_lik_BxC + distributions.std_normal_log_prob(z_BxCxL)
                 - distributions.diag_normal_log_prob(mean_BxL[:, None], log_var_BxL[:, None],
                                                      z_BxCxL))
    log_sum_B = jnp.logaddexp(log_sum_B, jax.nn.logsumexp(log_w_BxC, axis=1))
    return (log_sum_B, lik_sum_B + jnp.sum(log_lik_BxC, axis=1)), None

  batch = x_BxD.shape[0]
  init = (jnp.full((batch,), -jnp.inf), jnp.zeros((batch,)))
  (log_sum_B, lik_sum_B), _ = jax.lax.scan(body, init, jnp.arange(k // chunk))
  return log_sum_B - math.log(k), lik_sum_B / k


@functools.partial(jax.jit, static_argnames=("model", "proposal_samples"))
def proposal_moments(params, key, x_BxD, *, model, proposal_samples):
  """q(z|x)'s mean and log-variance; for an implicit encoder, its moment-matched Gaussian."""
  if model.encoder == "implicit":
    keys = jax.random.split(key, x_BxD.shape[0])
    return jax.vmap(avb.proposal, in_axes=(None, None, 0, 0, None))(
        params, model, keys, x_BxD, proposal_samples)
  return jax.vmap(models.encode, in_axes=(None, None, 0))(params, model, x_BxD)


def _batches(images: np.ndarray, batch_size: int):
  """Yields (batch, number of real rows); the last batch is padded by repetition."""
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    n = len(batch)
    if n < batch_size:
      batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - n, axis=0)])
    yield batch, n


def evaluate(params, key, images_NxD: np.ndarray, *, model: ModelConfig, binarization: str,
             k: int, batch_size: int = 100, quadrature: dict | None = None,
             rows_per_chunk: int = MAX_ROWS_PER_CHUNK, proposal_samples: int = 1000,
             log: Callable[[str], None] | None = None) -> dict:
  """Test-set metrics in nats per image (averaged over images).

  nll: -log p(x) by k-sample importance sampling with q(z|x) as proposal (the
  prior for a model without an encoder); nll_stderr = sd_i(log p(x_i)) / sqrt(N),
  with the sample sd (ddof=1) over the N images (None for N = 1); elbo = recon -
  kl, with recon = E_q log p(x|z) over the same k samples and the analytic KL;
  active_units: #{i : Var_x E_q[z_i] > 0.01} (Burda et al. 2016), None without an
  encoder.
  An implicit (AVB) encoder has no closed-form q: the proposal is the Gaussian
  moment-matched to `proposal_samples` encoder samples, active units use its
  means, and elbo, recon and kl are None (they would need log q).
  With `quadrature` ({"limit", "points"}) and a 2-D latent, also nll_quadrature.
  Dynamically binarized data is binarized once, with `key`, for the whole test.
  rows_per_chunk bounds the decoder rows (samples x images) per scan step.
  With `log`, progress lines (rate, ETA) at most every 10 s, between batches.
  """
  binarize_key, sample_key, proposal_key = jax.random.split(key, 3)
  implicit = model.encoder == "implicit"
  chunk = grid.largest_divisor_at_most(k, max(1, rows_per_chunk // batch_size))
  log_px, recon, kl, means, xs = [], [], [], [], []
  progress = Progress(f"importance sampling, k={k}", total=len(images_NxD), unit="images",
                      log=log)
  for i, (batch, n) in enumerate(_batches(images_NxD, batch_size)):
    x = data_lib.to_float(jax.random.fold_in(binarize_key, i), jnp.asarray(batch), binarization)
    xs.append(x[:n])
    mean, log_var = proposal_moments(params, jax.random.fold_in(proposal_key, i), x, model=model,
                              proposal_samples=proposal_samples)
    lp, rec = importance_sampled_log_likelihood(
        params, jax.random.fold_in(sample_key, i), x, model=model, k=k, chunk=chunk,
        proposal_BxL=(mean, log_var))
    log_px.append(lp[:n]); recon.append(rec[:n]); means.append(mean[:n])
    progress.update(i * batch_size + n, wait_for=lp)
    if not implicit:  # q's KL; the moment-matched proposal of an implicit q is not q
      kl.append(jax.vmap(distributions.kl_diag_normal_std_normal)(mean, log_var)[:n])
  log_px, recon, means = (np.concatenate(jax.device_get(a)) for a in (log_px, recon, means))
  kl = None if implicit else np.concatenate(jax.device_get(kl))
  results = {
      "test_nll": float(-log_px.mean()),
      "test_nll_stderr": _standard_error(log_px),
      "test_elbo": None if implicit else float((recon - kl).mean()),
      "test_recon": None if implicit else float(recon.mean()),
      "test_kl": None if implicit else float(kl.mean()),
      "active_units": active_units(means) if models.has_encoder(params) else None,
      "proposal": ("moment-matched" if implicit else
                   "encoder" if models.has_encoder(params) else "prior"),
      "eval_k": k,
      "num_test_images": int(len(log_px)),
  }
  if quadrature is not None and model.latent_dim == 2:
    log_px_grid = grid.quadrature_log_likelihood(params, jnp.concatenate(xs), model=model, log=log,
                                            **quadrature)
    results["test_nll_quadrature"] = float(-jnp.mean(log_px_grid))
  return results


def _standard_error(values_N: np.ndarray) -> float | None:
  """sd(v) / sqrt(N) with the sample sd, sqrt(sum_i (v_i - mean)^2 / (N - 1)); None for
  N < 2 (no spread to estimate)."""
  n = len(values_N)
  if n < 2:
    return None
  with np.errstate(invalid="ignore"):  # NaN values give NaN, which the trainer reports
    return float(np.std(values_N, ddof=1) / math.sqrt(n))


def active_units(means_NxL: np.ndarray, threshold: float = 0.01) -> int:
  """A_u = Cov_x(E_{q(u|x)}[u]) > threshold, counted over latent dimensions (Burda et al. 2016)."""
  with np.errstate(invalid="ignore"):  # NaN means (a diverged model) count as inactive
    return int(np.sum(np.var(np.asarray(means_NxL), axis=0) > threshold))
