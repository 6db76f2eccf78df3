"""evaluate.evaluate against closed forms on the linear-Gaussian model.

    z ~ N(0, I_L),  x | z ~ N(W z + b, s^2 I_D),  q(z|x) = N(mu(x), diag v(x)).

For z = mu + eps, eps ~ N(0, V), the residual r = x - b - W z = r0 - W eps with
r0 = x - b - W mu, so log p(x|z) = -|r|^2 / (2 s^2) - D log s - D log(2 pi) / 2 and
    E_q |r|^2   = |r0|^2 + tr(W^T W V),
    Var_q |r|^2 = 4 r0^T W V W^T r0 + 2 tr(W^T W V W^T W V)
(the linear and quadratic parts of a centred Gaussian are uncorrelated). Float
images go in with binarization "fixed", which `data.to_float` only casts. The
parameters and images a test evaluates are computed by compiled programs, not by eager
operations.
"""

import functools
import math

import jax
import numpy as np
import pytest

from tests.helpers import linear_gaussian
from vbayes import config as config_lib, progress, resources
from vbayes.evaluation import grid
from vbayes.evaluation import importance_sampling as evaluate_lib
from vbayes.models import build
from vbayes.models.networks import conv, gated, mlp

N_IMAGES, BATCH = 7, 3  # 7 = 2 * 3 + 1: the last batch has 2 padding rows


def _encoder_moments(encoder, x_NxD, latent):
  """The linear encoder's q(z|x): mean [N, L] and variance [N, L], in float64."""
  w = np.asarray(encoder["layer_0"]["w"], np.float64)
  b = np.asarray(encoder["layer_0"]["b"], np.float64)
  out = x_NxD @ w + b
  return out[:, :latent], np.exp(out[:, latent:])


def _recon_moments(lg, x_NxD, mean_NxL, var_NxL):
  """E_q log p(x|z) and Var_q log p(x|z) per image (see the module docstring)."""
  s2, dim = lg.scale**2, len(lg.b_D)
  wtw = lg.w_DxL.T @ lg.w_DxL
  r0_NxD = x_NxD - lg.b_D - mean_NxL @ lg.w_DxL.T
  g_NxL = r0_NxD @ lg.w_DxL
  mean_sq = np.sum(r0_NxD**2, axis=1) + np.einsum("ll,nl->n", wtw, var_NxL)
  var_sq = (4 * np.sum(g_NxL**2 * var_NxL, axis=1)
            + 2 * np.einsum("nl,lm,nm,ml->n", var_NxL, wtw, var_NxL, wtw))
  const = dim * math.log(lg.scale) + 0.5 * dim * math.log(2 * math.pi)
  return -mean_sq / (2 * s2) - const, var_sq / (4 * s2**2)


def _kl_to_prior(mean_NxL, var_NxL):
  """KL(N(m, diag v) || N(0, I)) per image."""
  return 0.5 * np.sum(var_NxL + mean_NxL**2 - 1 - np.log(var_NxL), axis=1)


def _kl_to_posterior(lg, x_NxD, mean_NxL, var_NxL):
  """KL(q(z|x) || p(z|x)), both diagonal Gaussians."""
  p_mean, p_var_L = lg.posterior(x_NxD)
  return 0.5 * np.sum(var_NxL / p_var_L + (mean_NxL - p_mean)**2 / p_var_L - 1
                      + np.log(p_var_L / var_NxL), axis=1)


def _images(lg, seed):
  return np.asarray(lg.sample(jax.random.key(seed), N_IMAGES), np.float32)


@pytest.fixture(scope="module")
def exact_lg():
  """The default linear-Gaussian model (as the lg_model fixture's) and its params with
  the exact encoder, built once for the tests that evaluate it."""
  lg = linear_gaussian.make()
  return lg, jax.jit(lg.params)()


def _evaluate(lg, params, x, k, **kwargs):
  return evaluate_lib.evaluate(params, jax.random.key(0), x, model=lg.config,
                               binarization="fixed", k=k, batch_size=BATCH, **kwargs)


def _padded(values_N):
  """What a mean over the padded batches would see: the last image 3 times."""
  return np.concatenate([values_N, np.repeat(values_N[-1:], BATCH - N_IMAGES % BATCH)])


def test_exact_posterior_encoder_gives_log_marginal(exact_lg):
  """With q(z|x) = p(z|x) every importance weight p(x, z) / q(z|x) is p(x): test_nll is
  -mean log p(x) up to float32 rounding, whatever k. The ELBO is log p(x) in
  expectation only (its recon is a k-sample mean): within 4 sd of that mean."""
  lg_model, params = exact_lg
  k = 4096
  x = _images(lg_model, 1)
  x64 = x.astype(np.float64)
  results = _evaluate(lg_model, params, x, k, quadrature={"limit": 6.0, "points": 256})
  log_px = lg_model.log_marginal(x64)
  mean, var = _encoder_moments(lg_model.exact_encoder(), x64, lg_model.config.latent_dim)
  p_mean, p_var = lg_model.posterior(x64)
  np.testing.assert_allclose(mean, p_mean, atol=1e-5)  # the encoder is exact
  np.testing.assert_allclose(var, np.broadcast_to(p_var, var.shape), rtol=1e-5)

  assert results["num_test_images"] == N_IMAGES and results["eval_k"] == k
  assert results["proposal"] == "encoder"
  nll_tol = 1e-4  # float32 sums of ~10-nat terms
  assert abs(results["test_nll"] + log_px.mean()) < nll_tol
  assert abs(_padded(log_px).mean() - log_px.mean()) > 100 * nll_tol  # padding would show
  # The sample sd (ddof=1) of log p(x_i) over sqrt(N): the mean's standard error.
  stderr = log_px.std(ddof=1) / math.sqrt(N_IMAGES)
  np.testing.assert_allclose(results["test_nll_stderr"], stderr, rtol=1e-3)
  assert abs(log_px.std(ddof=0) / math.sqrt(N_IMAGES) / stderr - 1) > 0.05  # ddof=0 would show

  kl = _kl_to_prior(mean, var)
  np.testing.assert_allclose(results["test_kl"], kl.mean(), rtol=1e-5)
  recon_mean, recon_var = _recon_moments(lg_model, x64, mean, var)
  recon_sd = math.sqrt(recon_var.sum() / k) / N_IMAGES  # sd of the mean of N k-sample means
  assert 4 * recon_sd < 0.05
  assert abs(results["test_recon"] - recon_mean.mean()) < 4 * recon_sd
  assert abs(results["test_elbo"] - (results["test_recon"] - results["test_kl"])) < 1e-5
  # KL(q || p(z|x)) = 0: E_q[recon] - KL(q || p(z)) = log p(x).
  np.testing.assert_allclose(recon_mean - kl, log_px, atol=1e-9)
  assert abs(results["test_elbo"] - log_px.mean()) < 4 * recon_sd + 1e-4
  # Midpoint rule, cells h = 0.047, posterior sds >= 0.33: sum over 2 dims of
  # h^2 / (24 sd^2) <= 1.7e-3 nats.
  assert abs(results["test_nll_quadrature"] + log_px.mean()) < 2e-3


def _partly_inactive_encoder(lg, x_NxD):
  """The perturbed encoder with its 4 mean columns set so that Var_x mu_l(x), over
  x_NxD (population variance, as evaluate.active_units), is [as it was, 0, 0.005, 0.02]:
  two units active by the 0.01 threshold. Its arrays are float32 numpy."""
  encoder = jax.jit(functools.partial(linear_gaussian.perturbed_encoder, lg))()
  w = np.array(encoder["layer_0"]["w"], np.float64)
  latent = lg.config.latent_dim
  w[:, 1] = 0.0
  for col, target in ((2, 0.005), (3, 0.02)):
    w[:, col] *= math.sqrt(target / np.var(x_NxD @ w[:, col]))
  return {"layer_0": {"w": w.astype(np.float32),
                      "b": np.asarray(encoder["layer_0"]["b"])}}, latent


def test_imperfect_encoder_gives_closed_form_kl_recon_and_active_units():
  """q(z|x) != p(z|x): test_kl is the mean of KL(q || N(0, I)) (analytic, so up to
  float32), test_recon the mean of E_q log p(x|z) within 4 sd of its k-sample
  mean, test_elbo = recon - kl, and that is log p(x) - KL(q || p(z|x)) within the
  same sd. active_units counts the units whose encoder mean varies over the images
  by more than 0.01."""
  lg = linear_gaussian.make(data_dim=8, latent_dim=4)
  k = 20_000
  x = _images(lg, 2)
  x64 = x.astype(np.float64)
  encoder, latent = _partly_inactive_encoder(lg, x64)
  results = _evaluate(lg, jax.jit(lg.params)(encoder), x, k)
  mean, var = _encoder_moments(encoder, x64, latent)
  np.testing.assert_allclose(np.var(mean, axis=0)[1:], [0.0, 0.005, 0.02], rtol=1e-4, atol=1e-9)
  assert np.var(mean, axis=0)[0] > 0.1

  assert results["num_test_images"] == N_IMAGES
  assert results["active_units"] == 2
  kl = _kl_to_prior(mean, var)
  np.testing.assert_allclose(results["test_kl"], kl.mean(), rtol=1e-5)
  assert abs(_padded(kl).mean() / kl.mean() - 1) > 1e-3  # padding would show
  recon_mean, recon_var = _recon_moments(lg, x64, mean, var)
  recon_sd = math.sqrt(recon_var.sum() / k) / N_IMAGES
  assert 4 * recon_sd < 0.1
  assert abs(results["test_recon"] - recon_mean.mean()) < 4 * recon_sd
  assert abs(_padded(recon_mean).mean() - recon_mean.mean()) > 8 * recon_sd  # padding would show
  assert abs(results["test_elbo"] - (results["test_recon"] - results["test_kl"])) < 1e-5
  gap = _kl_to_posterior(lg, x64, mean, var)
  assert gap.mean() > 20 * recon_sd  # the ELBO sits visibly below log p(x)
  elbo = lg.log_marginal(x64) - gap
  np.testing.assert_allclose(recon_mean - kl, elbo, atol=1e-9)
  assert abs(results["test_elbo"] - elbo.mean()) < 4 * recon_sd + 1e-4
  # Importance sampling from a q wider than p(z|x) recovers log p(x) up to a small
  # bias (-log p(x) <= E test_nll) and noise.
  nll = -lg.log_marginal(x64).mean()
  assert nll - 1e-3 < results["test_nll"] < nll + 0.05


def test_one_image_has_no_standard_error(exact_lg):
  """The sample sd of one value is undefined: test_nll_stderr is None, not 0."""
  lg_model, params = exact_lg
  x = _images(lg_model, 3)[:1]
  results = _evaluate(lg_model, params, x, 8)
  assert results["num_test_images"] == 1
  assert results["test_nll_stderr"] is None
  assert abs(results["test_nll"] + lg_model.log_marginal(x.astype(np.float64))[0]) < 1e-4


def test_evaluation_and_quadrature_log_progress_between_calls(monkeypatch):
  """With the interval at 0 s every batch and grid band but the last logs a line with
  its count, rate and ETA; with no log nothing is written."""
  monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
  monkeypatch.setattr(grid, "MAX_CHUNK_ENTRIES", 7 * 256)  # 16 chunks of the 64^2 grid
  model = config_lib.ModelConfig(data_dim=6, latent_dim=2, network=mlp.Config(hidden_sizes=(8,)))
  params = jax.jit(lambda: build(model).init(jax.random.key(0)))()
  images = (np.random.default_rng(0).random((7, 6)) < 0.5).astype(np.uint8)
  lines = []
  evaluate_lib.evaluate(params, jax.random.key(1), images, model=model, binarization="fixed", k=4,
                    batch_size=3, quadrature={"limit": 5.0, "points": 64}, log=lines.append)
  sampling = [l for l in lines if l.startswith("importance sampling, k=4:")]
  assert [l.split(": ")[1].split(" ")[0] for l in sampling] == ["3/7", "6/7"]
  assert all("images/s, ETA" in l for l in sampling)
  quadrature = [l for l in lines if l.startswith("quadrature:")]
  assert quadrature and all("grid points/s, ETA" in l for l in quadrature)
  assert quadrature[-1].split(": ")[1].startswith(f"{64 * 64 * 15 // 16}/{64 * 64}")


def test_evaluation_chunks_follow_the_decoder_and_the_device_memory():
  """On the CPU, as many decoder rows per scan step as make the row's largest array fill
  CPU_CHUNK_FLOATS, at most MAX_ROWS_PER_CHUNK; on a device reporting 80 GB, as many as
  an eighth of it holds, capped; on a small one, never fewer than the CPU's."""
  is_lib = evaluate_lib

  class Device:  # pylint: disable=too-few-public-methods
    def __init__(self, platform, limit):
      self.platform, self._limit = platform, limit

    def memory_stats(self):
      return None if self._limit is None else {"bytes_limit": self._limit}

  assert is_lib.default_rows_per_chunk(784) == is_lib.MAX_ROWS_PER_CHUNK
  assert is_lib.default_rows_per_chunk(784, Device("cpu", None)) == is_lib.MAX_ROWS_PER_CHUNK
  assert is_lib.default_rows_per_chunk(784, Device("gpu", 80 * 2**30)) == 65_536
  expected = 16 * 2**30 // (8 * 16 * 4 * 784)
  assert is_lib.default_rows_per_chunk(784, Device("tpu", 16 * 2**30)) == expected
  assert is_lib.default_rows_per_chunk(784, Device("gpu", 2**20)) == is_lib.MAX_ROWS_PER_CHUNK
  assert is_lib.default_rows_per_chunk(784, Device("gpu", None)) == is_lib.MAX_ROWS_PER_CHUNK
  assert is_lib.default_rows_per_chunk(1024) == is_lib.MAX_ROWS_PER_CHUNK  # gated 500-500
  assert is_lib.default_rows_per_chunk(6272) == is_lib.CPU_CHUNK_FLOATS // 6272 == 326
  assert is_lib.default_rows_per_chunk(10**9) == 1
  assert is_lib.default_rows_per_chunk(6272, Device("gpu", 2**20)) == 326


@pytest.mark.parametrize("network, largest", [
    (mlp.Config(hidden_sizes=(8,)), 64),  # the 8x8 images' logits
    (mlp.Config(hidden_sizes=(100, 8)), 100),  # a hidden layer wider than the image
    (gated.Config(hidden_sizes=(50,)), 2 * 50),  # a gated layer's value and gate at once
    (conv.Config(hidden_sizes=(), conv_channels=(5, 7)), 4 * 4 * 5)],  # 2x2x7 -> 4x4x5 -> 8x8
    ids=["mlp", "wide_mlp", "gated", "conv"])
def test_the_largest_array_of_a_decoder_row_is_found_in_its_program(network, largest):
  """resources.largest_array_per_decoder_row reads the traced log-likelihood: the
  logits, a hidden layer, or a conv decoder's widest feature map."""
  model = build(config_lib.ModelConfig(data_dim=64, latent_dim=2, network=network))
  assert resources.largest_array_per_decoder_row(model) == largest


def test_an_images_dynamic_binarization_depends_on_its_index_alone():
  """over_images.binarized draws image j from its own key: the same in any batch, at
  any batch size, and map_over_images hands the estimator those images, binarized by one
  compiled program per batch shape."""
  from vbayes.evaluation import over_images
  images = np.random.default_rng(0).integers(0, 256, size=(7, 30)).astype(np.uint8)
  key = jax.random.key(3)

  @jax.jit
  def whole_and_parts(images, key):
    """The images binarized at once, and in batches of 3 (the last of 1)."""
    return (over_images.binarized(images, key, "dynamic"),
            [over_images.binarized(images[a:a + 3], key, "dynamic", first_index=a)
             for a in range(0, 7, 3)])

  whole, parts = jax.tree.map(np.asarray, whole_and_parts(images, key))
  np.testing.assert_array_equal(whole, np.concatenate(parts))
  assert set(np.unique(whole)) == {0.0, 1.0}
  over_images.binarized.clear_cache()
  for size in (2, 7, 10):
    seen = over_images.map_over_images(lambda i, x: {"x": x}, images, key=key,
                                       binarization="dynamic", batch_size=size)["x"]
    np.testing.assert_array_equal(seen, whole)
  # One compiled binarization per batch shape (4 batches of 2, 1 of 7, 1 of 10 padded).
  assert over_images.binarized._cache_size() == 3  # pylint: disable=protected-access
