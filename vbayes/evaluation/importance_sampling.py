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

from vbayes import distributed, distributions, keys, numerics, precision, resources
from vbayes.evaluation import grid, over_images
from vbayes.config import ModelConfig
from vbayes.models import Model, as_model
from vbayes.progress import Progress

# Decoder rows (samples x images) per scan step on a CPU: as many as make the largest
# array of a row (`resources.largest_array_per_decoder_row`: the logits for an MLP,
# a feature map for a conv decoder) fill CPU_CHUNK_FLOATS, at most MAX_ROWS_PER_CHUNK.
# 2000 rows was about the fastest on a 2-core CPU for MLP decoders on MNIST (1000-5000
# alike), and every decoder whose rows are at most 1024 wide keeps them; the conv
# decoder's 14x14x32 feature maps get 326, where 2000 ran 1.9x slower (bench/README.md).
MAX_ROWS_PER_CHUNK, CPU_CHUNK_FLOATS = 2_000, 2_000 * 1024
# On an accelerator: rows whose float32 activations, ROW_ARRAYS arrays the size of the
# row's largest (the logits, their gradient-free temporaries, the hidden layers), fill
# at most 1/MEMORY_SHARE of the device's memory; at most ACCELERATOR_MAX_ROWS, never
# fewer than on a CPU.
ROW_ARRAYS, MEMORY_SHARE, ACCELERATOR_MAX_ROWS = resources.ROW_ARRAYS, 8, 65_536


def default_rows_per_chunk(row_floats: int, device=None) -> int:
  """Decoder rows per scan step on `device` (default the first) for a decoder whose
  largest array holds row_floats per row: on a CPU (or a device that reports no memory
  limit) CPU_CHUNK_FLOATS // row_floats, within [1, MAX_ROWS_PER_CHUNK]; otherwise as
  many as 1/MEMORY_SHARE of its memory holds at ROW_ARRAYS * row_floats floats per
  row, within [the CPU's rows, ACCELERATOR_MAX_ROWS]. E.g. 80 GB and 784: 65536."""
  cpu_rows = max(1, min(MAX_ROWS_PER_CHUNK, CPU_CHUNK_FLOATS // row_floats))
  device = jax.devices()[0] if device is None else device
  stats = device.memory_stats() if device.platform != "cpu" else None
  limit = (stats or {}).get("bytes_limit")
  if not limit:
    return cpu_rows
  rows = limit // (MEMORY_SHARE * ROW_ARRAYS * 4 * row_floats)
  return int(min(max(rows, cpu_rows), ACCELERATOR_MAX_ROWS))


@functools.partial(jax.jit, static_argnames=("model", "k", "chunk"))
@precision.estimates
def importance_sampled_log_likelihood(params, key, x_BxD, *, model: Model | ModelConfig, k: int,
                                      chunk: int, proposal=None):
  """log p(x) ~= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)  (Burda et al. 2016).

  q is the model's proposal (the prior for a model without an encoder: prior
  importance sampling), or `proposal`, another distribution of batch shape [B]
  (e.g. the moment-matched Gaussian of an implicit encoder). Also returns the
  k-sample mean of log p(x|z_i), the reconstruction term of the ELBO when q is the
  proposal. The k samples go in chunks of `chunk` (which must divide k) through a
  running log-sum-exp. Returns (log_px_B, mean_log_lik_B).
  """
  if k % chunk:
    raise ValueError(f"chunk {chunk} must divide k {k}")
  model = as_model(model)
  q = model.proposal_distribution(params, x_BxD) if proposal is None else proposal
  prior = model.prior_distribution(params)  # once, not per chunk

  def chunk_terms(i):
    z_BxCxL, log_q_BxC = q.sample_and_log_prob(jax.random.fold_in(key, i), chunk)
    # The barrier keeps XLA from merging the two sums over log_lik (over pixels,
    # then samples) into one reduction that writes out every pixel's term.
    log_lik_BxC = jax.lax.optimization_barrier(
        model.log_likelihood_of_samples(params, z_BxCxL, x_BxD))
    log_w_BxC = model.log_weights(params, x_BxD, z_BxCxL, q, log_lik_BxC, log_q_BxC, prior)
    return log_w_BxC, jnp.sum(log_lik_BxC, axis=1)

  log_sum_B, lik_sum_B = numerics.logsumexp_over_chunks(chunk_terms, jnp.arange(k // chunk))
  return log_sum_B - math.log(k), lik_sum_B / k


@functools.partial(jax.jit, static_argnames=("model", "proposal_samples"))
@precision.estimates
def proposal_for(params, key, x_BxD, *, model: Model | ModelConfig, proposal_samples: int):
  """The importance-sampling proposal of each image: q(z|x) itself when it has a density,
  else (an implicit encoder) `moment_matched` to `proposal_samples` of its draws."""
  model = as_model(model)
  if model.has_proposal_density:
    return model.proposal_distribution(params, x_BxD)
  keys = jax.random.split(key, x_BxD.shape[0])
  draws = lambda key, x_D: model.sample_proposal(params, key, x_D, proposal_samples)
  return moment_matched(jax.vmap(draws)(keys, x_BxD))


posterior_mean = jax.jit(precision.estimates(distributions.mean_or_sample_mean),
                         static_argnames=("samples",))


def moment_matched(z_xKxL) -> distributions.DiagNormal:
  """N(mu, diag sigma^2) with the sample moments of z over axis -2
  (`distributions.sample_moments`): batch shape [...]. Any proposal with full support
  gives a consistent estimate of p(x); this one is close to the q it was drawn from."""
  mean, sd = distributions.sample_moments(z_xKxL)
  return distributions.DiagNormal(mean, 2.0 * jnp.log(sd))


def chunk_size(k: int, batch_size: int, model: Model | ModelConfig,
               rows_per_chunk: int | None = None) -> int:
  """Samples per scan step for k samples of batch_size images: the largest divisor of k
  with at most rows_per_chunk decoder rows (default `default_rows_per_chunk` for the
  model's decoder)."""
  rows = rows_per_chunk or default_rows_per_chunk(
      resources.largest_array_per_decoder_row(as_model(model)))
  return numerics.largest_divisor_at_most(k, max(1, rows // batch_size))


def evaluate(params, key, images_NxD: np.ndarray, *, model: Model | ModelConfig,
             binarization: str,
             k: int, batch_size: int = 100, quadrature: dict | None = None,
             rows_per_chunk: int | None = None, proposal_samples: int = 1000,
             log: Callable[[str], None] | None = None, per_image: bool = False) -> dict:
  """Test-set metrics in nats per image (averaged over images).

  nll: -log p(x) by k-sample importance sampling with q(z|x) as proposal (the
  prior for a model without an encoder); nll_stderr = sd_i(log p(x_i)) / sqrt(N),
  with the sample sd (ddof=1) over the N images (None for N = 1); elbo = recon -
  kl, with recon = E_q log p(x|z) over the same k samples and the analytic KL (a
  1000-sample Monte Carlo KL where the prior and q have no closed form);
  active_units: #{i : Var_x E_q[z_i] > 0.01} (Burda et al. 2016), None without an
  encoder, and active_units_per_layer, the count within each stochastic layer (one
  number for one layer); E_q[z_i] is the sample mean of `proposal_samples` draws for
  a q other than a diagonal Gaussian (`posterior_mean`).
  An implicit (AVB) encoder has no closed-form q: the proposal is the Gaussian
  moment-matched to `proposal_samples` encoder samples, active units use its
  means, and elbo, recon and kl are None (they would need log q).
  With `quadrature` ({"limit", "points"}) and a 2-D latent, also nll_quadrature.
  With per_image, also "test_log_px": the [N] array of every image's log p(x) estimate
  (what a paired comparison of two models on the same images needs).
  `key` is the evaluation key (vbayes.keys): images are binarized and batches drawn
  from its streams (over_images.map_over_images), so experiments.evaluate with the
  run's seed reads the same images. rows_per_chunk bounds the decoder rows (samples x
  images) per scan step (default: `default_rows_per_chunk` for the model's decoder and
  the device's memory). With `log`, progress lines (rate, ETA) at most every 10 s, between batches.
  """
  model = as_model(model)
  params = distributed.local_copy(params)
  implicit = not model.has_proposal_density
  chunk = chunk_size(k, batch_size, model, rows_per_chunk)
  sample_key, proposal_key, kl_key, mean_key = (
      keys.stream(key, s) for s in (keys.SAMPLES, keys.PROPOSAL, keys.KL, keys.POSTERIOR_MEAN))

  def batch_metrics(i, x):
    out, q = {}, None  # without an encoder, the prior proposes (inside the jitted sampler)
    if model.has_encoder:
      q = proposal_for(params, keys.item(proposal_key, i), x, model=model,
                       proposal_samples=proposal_samples)
      out["means"] = posterior_mean(q, keys.item(mean_key, i), proposal_samples)
    out["log_px"], out["recon"] = importance_sampled_log_likelihood(
        params, keys.item(sample_key, i), x, model=model, k=k, chunk=chunk, proposal=q)
    if not implicit:  # q's KL; the moment-matched proposal of an implicit q is not q
      out["kl"] = (jnp.zeros(len(x)) if q is None else
                   _kl(q, params, keys.item(kl_key, i), model=model))
    return out

  values = over_images.map_over_images(
      batch_metrics, images_NxD, key=key, binarization=binarization, batch_size=batch_size,
      progress=Progress(f"importance sampling, k={k}", total=len(images_NxD), unit="images",
                        log=log), wait_for="log_px")
  log_px, recon, kl, means = (values.get(name) for name in ("log_px", "recon", "kl", "means"))
  results = {
      "test_nll": float(-log_px.mean()),
      "test_nll_stderr": _standard_error(log_px),
      "test_elbo": None if implicit else float((recon - kl).mean()),
      "test_recon": None if implicit else float(recon.mean()),
      "test_kl": None if implicit else float(kl.mean()),
      "active_units": active_units(means) if model.has_encoder else None,
      "active_units_per_layer": ([active_units(block) for block in np.split(
          means, np.cumsum(model.layers)[:-1], axis=1)] if model.has_encoder else None),
      "proposal": ("moment-matched" if implicit else
                   "encoder" if model.has_encoder else "prior"),
      "eval_k": k,
      "num_test_images": int(len(log_px)),
  }
  if quadrature is not None and model.latent_dim == 2:  # every image at once: one grid
    per_process = -(-len(images_NxD) // jax.process_count())
    grid_log_px = over_images.map_over_images(
        lambda i, x: {"log_px": grid.quadrature_log_likelihood(params, x, model=model, log=log,
                                                                **quadrature)},
        images_NxD, key=key, binarization=binarization, batch_size=per_process)["log_px"]
    results["test_nll_quadrature"] = float(-np.mean(grid_log_px))
  if per_image:
    results["test_log_px"] = log_px
  return results


def held_out_bounds(params, key, images_NxD: np.ndarray, *, model: Model | ModelConfig,
                    binarization: str, ks: tuple[int, ...], batch_size: int = 100,
                    rows_per_chunk: int | None = None,
                    proposal_samples: int = 1000) -> dict[int, float]:
  """{k: mean over images of log (1/k) sum_i w_i} with w_i = p(x, z_i) / q(z_i|x): the
  k-sample importance-weighted bound L_k (Burda et al. 2016), k = 1 the ELBO (a
  one-sample estimate per image; for an implicit encoder, the bound of its
  moment-matched Gaussian, `proposal_for`). Cheap enough to watch during training:
  nothing else is computed. Mapped over the images as `evaluate` is."""
  model = as_model(model)
  params = distributed.local_copy(params)
  sample_key, proposal_key = keys.stream(key, keys.SAMPLES), keys.stream(key, keys.PROPOSAL)

  def batch_bounds(i, x):
    q = (proposal_for(params, keys.item(proposal_key, i), x, model=model,
                      proposal_samples=proposal_samples) if model.has_encoder else None)
    return {f"L_{k}": importance_sampled_log_likelihood(
        params, keys.item(keys.item(sample_key, i), k), x, model=model, k=k,
        chunk=chunk_size(k, batch_size, model, rows_per_chunk), proposal=q)[0]
            for k in ks}

  values = over_images.map_over_images(batch_bounds, images_NxD, key=key,
                                       binarization=binarization, batch_size=batch_size)
  return {k: float(np.mean(values[f"L_{k}"])) for k in ks}


@functools.partial(jax.jit, static_argnames=("model", "samples"))
@precision.estimates
def _kl(q, params, key, *, model: Model, samples: int = 1000):
  """KL(q || p) per image: the closed form where there is one, else the mean of
  log q(z) - log p(z) over `samples` draws z ~ q (a Monte Carlo estimate). The prior is
  built here, at full precision (the VampPrior's encodes its pseudo-inputs)."""
  prior = model.prior_distribution(params)
  return distributions.kl_or_monte_carlo(q, prior, lambda: q.sample_and_log_prob(key, samples))


def _standard_error(values_N: np.ndarray) -> float | None:
  """sd(v) / sqrt(N) with the sample sd, sqrt(sum_i (v_i - mean)^2 / (N - 1)); None for
  N < 2 (no spread to estimate)."""
  n = len(values_N)
  if n < 2:
    return None
  with np.errstate(invalid="ignore"):  # NaN values give NaN, which the training loop reports
    return float(np.std(values_N, ddof=1) / math.sqrt(n))


def active_units(means_NxL: np.ndarray, threshold: float = 0.01) -> int:
  """A_u = Cov_x(E_{q(u|x)}[u]) > threshold, counted over latent dimensions (Burda et al. 2016)."""
  with np.errstate(invalid="ignore"):  # NaN means (a diverged model) count as inactive
    return int(np.sum(np.var(np.asarray(means_NxL), axis=0) > threshold))
