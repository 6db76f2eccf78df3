r"""Signal-to-noise ratio of stochastic gradient estimators, per parameter.

For an estimator g(eps) of a gradient, with eps the estimator's randomness,
    SNR_j = |E[g_j]| / sd[g_j]        (the definition of Rainforth et al. 2018)
for each scalar parameter j. Both moments are estimated from M independent
draws. Rainforth et al. prove that for IWAE-k the plain encoder gradient has
SNR O(1/sqrt(k)) while the decoder's grows as O(sqrt(k)); Tucker et al. (2019)
show that the DReG encoder gradient's SNR grows with k instead.

    grads = iwae_gradient(model, k=64, estimator="dreg")
    mean, var = gradient_moments(grads, params, key, x_BxD, num_draws=200)
    summarize(mean, var)  # {"encoder": {"mean": ..., "median": ...}, "decoder": {...}}

summarize averages over groups of parameters: by default every parameter of each
network (network_groups); rainforth_groups picks, in gaussian_toy's parameters, the
ones of Rainforth et al.'s model (the encoder's A and b, the decoder's theta).

The M draws are never stored: a scan over chunks of `draws_per_chunk` vmapped
draws merges each chunk's mean and squared deviations into running ones (Chan,
Golub & LeVeque 1979), so that float32 keeps the variance of a gradient whose mean
is far larger than its spread.
"""

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vbayes import precision
from vbayes.objectives import iwae
from vbayes.config import ModelConfig
from vbayes.models.likelihoods import gaussian
from vbayes.models.networks import mlp


def gaussian_toy(key: jax.Array, *, dim: int = 20, num_points: int = 1024,
                 perturbation: float = 0.01, encoder_variance: float = 2.0 / 3.0):
  """The Gaussian model of Rainforth et al. (2018), in vbayes' parametrization.

  Theirs: z ~ N(theta, I), x | z ~ N(z, I), q(z|x) = N(A x + b, (2/3) I), with
  theta ~ N(0, I); the optimum is A = I/2, b = theta/2. With z' = z - theta the
  prior is vbayes' N(0, I) and x | z' ~ N(z' + theta, I): a linear decoder with
  weight I, bias theta and scale 1, and p(z'|x) = N((x - theta)/2, I/2). The
  encoder is A = I/2, b = -theta/2 with each entry perturbed by
  N(0, perturbation^2), and log-variance log(encoder_variance); the defaults
  (0.01 and 2/3) follow our reading of the paper's setup.
  Returns (model, params, x [num_points, dim] drawn from the model, theta).
  """
  theta_key, z_key, noise_key, pert_key = jax.random.split(key, 4)
  theta = jax.random.normal(theta_key, (dim,))
  z = jax.random.normal(z_key, (num_points, dim))
  x = z + theta + jax.random.normal(noise_key, (num_points, dim))
  model = ModelConfig(data_dim=dim, latent_dim=dim, network=mlp.Config(hidden_sizes=()),
                      likelihood=gaussian.Config(gaussian_mean="identity", min_scale=1e-3))
  a_key, b_key = jax.random.split(pert_key)
  a = 0.5 * jnp.eye(dim) + perturbation * jax.random.normal(a_key, (dim, dim))
  b = -0.5 * theta + perturbation * jax.random.normal(b_key, (dim,))
  encoder_w = jnp.concatenate([a.T, jnp.zeros((dim, dim))], axis=1)  # x_D @ w -> [mean, log var]
  encoder_b = jnp.concatenate([b, jnp.full((dim,), math.log(encoder_variance))])
  params = {
      "encoder": {"layer_0": {"w": encoder_w, "b": encoder_b}},
      "decoder": {"layer_0": {"w": jnp.eye(dim), "b": theta}},
      "decoder_raw_scale": jnp.full((dim,), math.log(math.expm1(1.0 - model.likelihood.min_scale))),
  }
  return model, params, x, theta


def iwae_gradient(model: ModelConfig, *, k: int, estimator: str) -> Callable:
  """grad(params, key, x_BxD): one draw of the `estimator` gradient of -mean_b L_k(x_b)."""
  loss = functools.partial(iwae.iwae_loss, model=model, k=k, estimator=estimator)
  return jax.grad(lambda params, key, x_BxD: loss(params, key, x_BxD)[0])


@functools.partial(jax.jit, static_argnames=("grad_fn", "num_draws", "draws_per_chunk"))
@precision.estimates
def gradient_moments(grad_fn: Callable, params, key: jax.Array, x_BxD, *, num_draws: int,
                     draws_per_chunk: int = 8):
  """Mean and (unbiased) variance of grad_fn(params, key_m, x_BxD) over m < num_draws.

  Draw m uses key_m = fold_in(key, m). Returns two pytrees shaped like params.
  Each chunk of C draws g_1..g_C gives its mean, mean_b = g_1 + (1/C) sum_c (g_c - g_1),
  and its sum of squared deviations M2_b; the running (n, mean, M2) absorbs chunk b
  by the pairwise update of Chan, Golub & LeVeque (1979)
      delta = mean_b - mean,   mean += delta C / (n + C),
      M2 += M2_b + delta^2 n C / (n + C).
  A gradient entry that is the same in every draw gets variance exactly 0.
  """
  if num_draws < 2:
    raise ValueError(f"num_draws must be at least 2 for a variance, got {num_draws}")
  if num_draws % draws_per_chunk:
    raise ValueError(f"draws_per_chunk {draws_per_chunk} must divide num_draws {num_draws}")
  draw = lambda m: grad_fn(params, jax.random.fold_in(key, m), x_BxD)
  c = draws_per_chunk

  def add_chunk(state, chunk):
    n, mean, m2 = state
    g_CxP = jax.vmap(draw)(chunk * c + jnp.arange(c))
    chunk_mean = jax.tree.map(lambda g: g[0] + jnp.mean(g - g[0], 0), g_CxP)
    chunk_m2 = jax.tree.map(lambda g, mu: jnp.sum(jnp.square(g - mu), 0), g_CxP, chunk_mean)
    delta = jax.tree.map(jnp.subtract, chunk_mean, mean)
    mean = jax.tree.map(lambda mu, d: mu + d * (c / (n + c)), mean, delta)
    m2 = jax.tree.map(lambda a, b, d: a + b + jnp.square(d) * (n * c / (n + c)), m2, chunk_m2,
                      delta)
    return (n + c, mean, m2), None

  zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, p.dtype), jax.eval_shape(draw, 0))
  (_, mean, m2), _ = jax.lax.scan(add_chunk, (jnp.float32(0), zeros, zeros),
                                  jnp.arange(num_draws // c))
  return mean, jax.tree.map(lambda m: m / (num_draws - 1), m2)


Selector = Callable[[tuple, np.ndarray], "bool | np.ndarray"]


def network_groups(encoder: str = "encoder", decoder: str = "decoder") -> dict[str, Selector]:
  """{encoder: every scalar under params["encoder"], decoder: every other scalar}.

  All parameters of each network: a Gaussian encoder's mean and log-variance heads,
  the decoder's weights and biases and, for a Gaussian likelihood, its scale.
  """
  return {encoder: lambda path, leaf: path[0] == "encoder",
          decoder: lambda path, leaf: path[0] != "encoder"}


def rainforth_groups(dim: int) -> dict[str, Selector]:
  """The parameters of Rainforth et al.'s Gaussian model, in gaussian_toy's params.

  "encoder (A, b)": the mean A x + b of q(z|x) = N(A x + b, (2/3) I), i.e. the first
  dim columns of the encoder's w = [A^T | 0] and the first dim entries of its
  b = [b | log(2/3)]: dim^2 + dim scalars. "decoder (theta)": the decoder bias theta,
  dim scalars. Left out are the parameters their model does not have: the
  log-variance head, the decoder weight W = I and the decoder scale.
  """
  def mean_head(path, leaf):  # w [dim, 2 dim], b [2 dim]: outputs 0..dim-1 are the mean
    if path[:2] != ("encoder", "layer_0"):
      return False
    if leaf.shape[-1] != 2 * dim:
      raise ValueError(f"{path} has {leaf.shape[-1]} outputs, not 2 * dim = {2 * dim}")
    return np.arange(2 * dim) < dim

  return {"encoder (A, b)": mean_head,
          "decoder (theta)": lambda path, leaf: path == ("decoder", "layer_0", "b")}


def select(tree, selector: Selector) -> np.ndarray:
  """The scalars of `tree` that `selector` picks, flat, leaf by leaf in tree order.

  selector(path, leaf) is a bool, or a bool array broadcasting to leaf.shape, with
  path the leaf's tuple of dict keys, e.g. ("encoder", "layer_0", "w").
  """
  parts = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    leaf = np.asarray(leaf)
    mask = selector(tuple(getattr(key, "key", key) for key in path), leaf)
    parts.append(leaf[np.broadcast_to(mask, leaf.shape)])
  return np.concatenate(parts) if parts else np.zeros(0)


def per_parameter_snr(mean, var, groups: dict[str, Selector] | None = None
                      ) -> dict[str, np.ndarray]:
  """{group: SNR_j = |mean_j| / sqrt(var_j) for each scalar j its selector picks} (flat).

  groups maps names to selectors (see `select`); the default is network_groups(),
  every parameter of the encoder and of the decoder. Parameters whose gradient has
  zero variance (dead units, or a path estimator at the exact posterior) have no SNR
  and are left out.
  """
  out = {}
  for group, selector in (network_groups() if groups is None else groups).items():
    m, v = select(mean, selector), select(var, selector)
    keep = v > 0
    out[group] = np.abs(m[keep]) / np.sqrt(v[keep])
  return out


def summarize(mean, var, groups: dict[str, Selector] | None = None) -> dict[str, dict]:
  """Mean and median over the parameters of each group of SNR_j (per_parameter_snr),
  and how many parameters that is; a group with no SNR is left out."""
  return {group: {"mean": float(np.mean(snr)), "median": float(np.median(snr)),
                  "parameters": int(snr.size)}
          for group, snr in per_parameter_snr(mean, var, groups).items() if snr.size}


def noise_floor(num_draws: int) -> float:
  """E|mean of M draws| / sd for a coordinate whose true mean is 0: sqrt(2 / (pi M)).

  An estimated SNR near this value says only that the true SNR is smaller.
  """
  return math.sqrt(2.0 / (math.pi * num_draws))


def markdown_table(snr: dict, ks, groups=None) -> str:
  """The sweep as a table (mean and median SNR of each group), then the log-log slope
  of the mean SNR in k for every estimator. groups: the names to show (default all)."""
  groups = list(groups or next(iter(snr.values())))
  rows = ["| estimator | k | " + " | ".join(f"{g} SNR, mean | {g}, median" for g in groups)
          + " |", "|" + " --- |" * (2 + 2 * len(groups))]
  for (estimator, k), s in snr.items():
    rows.append(f"| {estimator} | {k} | " + " | ".join(
        f"{s[g]['mean']:.3g} | {s[g]['median']:.3g}" for g in groups) + " |")
  rows += ["", "| estimator | slope of log mean SNR in log k: " + " | ".join(groups) + " |",
           "|" + " --- |" * (1 + len(groups))]
  for estimator in dict.fromkeys(e for e, _ in snr):
    slopes = [log_log_slope(ks, [snr[estimator, k][g]["mean"] for k in ks]) for g in groups]
    rows.append(f"| {estimator} | " + " | ".join(f"{slope:+.2f}" for slope in slopes) + " |")
  return "\n".join(rows)


def renamed(snr: dict, names: dict[str, str]) -> dict:
  """The sweep with only the groups in names = {new name: old name}, renamed: e.g.
  {"encoder": "encoder (A, b)", "decoder": "decoder (theta)"} for
  vbayes.plots.curves.save_snr_curves, which draws the groups "encoder" and "decoder"."""
  return {setting: {new: s[old] for new, old in names.items()} for setting, s in snr.items()}


def log_log_slope(ks, values) -> float:
  """Least-squares slope of log(value) against log(k): -0.5 is SNR ∝ 1/sqrt(k)."""
  return float(np.polyfit(np.log(np.asarray(ks, float)), np.log(np.asarray(values, float)), 1)[0])


def sweep(params, key: jax.Array, x_BxD, *, model: ModelConfig, ks, estimators, num_draws: int,
          draws_per_chunk: int = 8, groups: dict[str, Selector] | None = None,
          log=print) -> dict:
  """summarize(...) of the IWAE-k gradient for every (estimator, k): {(estimator, k): {...}}.

  Setting (estimator, k) is drawn from key_k = fold_in(key, k): the estimators at
  one k see the same noise, so their decoder gradients (which they share) agree
  exactly, and draws for different k are independent. (With `key` itself for every
  k they would not be: JAX's default (partitionable) threefry draws element i of a
  shape from its flat index i, so a smaller k's eps_BxKxL would repeat part of a
  larger k's.)
  """
  out = {}
  for estimator in estimators:
    for k in ks:
      grad_fn = iwae_gradient(model, k=k, estimator=estimator)
      mean, var = gradient_moments(grad_fn, params, jax.random.fold_in(key, k), x_BxD,
                                   num_draws=num_draws, draws_per_chunk=draws_per_chunk)
      out[estimator, k] = summarize(mean, var, groups)
      log(f"{estimator:8s} k={k:<5d} " + "  ".join(
          f"{group} SNR mean {s['mean']:.3g} median {s['median']:.3g}"
          for group, s in out[estimator, k].items()))
  return out


_iwae_loss = jax.jit(precision.estimates(iwae.iwae_loss), static_argnames=("model", "k", "estimator"))


def bound_and_ess(params, key: jax.Array, x_BxD, *, model: ModelConfig, ks) -> dict:
  """{k: (mean_b L_k(x_b), mean_b ESS_k(x_b))}: how far k is from the asymptotic regime.

  ESS = 1 / sum_i w~_i^2 of the k normalized weights; Rainforth et al.'s rates
  describe k large enough that the weights are well averaged (ESS >> 1) and L_k
  is close to log p(x).
  """
  out = {}
  for k in ks:
    _, metrics = _iwae_loss(params, jax.random.fold_in(key, k), x_BxD, model=model, k=k)
    out[k] = (float(metrics["iwae_bound"]), float(metrics["ess"]))
  return out
