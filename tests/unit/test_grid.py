"""Grid quadrature, grid posteriors and grid KLs against the closed forms of the
linear-Gaussian model (full and half-observed images)."""

import jax
import numpy as np

from vbayes.evaluation import grid


def _observed_half(lg_model):
  """Mask of the first D/2 coordinates and the closed-form p(z | x_obs) pieces."""
  d = len(lg_model.b_D)
  mask = (np.arange(d) < d // 2).astype(np.float32)
  w_o, b_o, s2 = lg_model.w_DxL[: d // 2], lg_model.b_D[: d // 2], lg_model.scale**2
  cov = np.linalg.inv(np.eye(2) + w_o.T @ w_o / s2)
  return mask, w_o, b_o, s2, cov


def _gaussian_kl(m1, c1, m2, c2):
  """KL(N(m1, C1) || N(m2, C2)) = 1/2 [tr(C2^-1 C1) + d^T C2^-1 d - L + log det C2 / det C1]."""
  c2_inv = np.linalg.inv(c2)
  diff = m2 - m1
  return 0.5 * (np.trace(c2_inv @ c1) + diff @ c2_inv @ diff - len(m1)
                + np.log(np.linalg.det(c2) / np.linalg.det(c1)))


def test_quadrature_matches_log_marginal(lg_model):
  @jax.jit
  def draws_and_quadrature():
    x = lg_model.sample(jax.random.key(4), 6)
    return x, grid.quadrature_log_likelihood(lg_model.params(), x, model=lg_model.config,
                                             limit=6.0, points=256)

  x, got = draws_and_quadrature()
  np.testing.assert_allclose(got, lg_model.log_marginal(x), atol=1e-3)


def test_quadrature_in_image_blocks_matches_log_marginal(lg_model, monkeypatch):
  """The Gaussian likelihood's [B, C, D] block is bounded by splitting the images: with a
  bound small enough for blocks of 5 images, 12 images take 3 blocks, same answer."""
  d = lg_model.config.data_dim
  monkeypatch.setattr(grid, "MAX_CHUNK_ENTRIES", 5 * d * grid.MIN_CHUNK_POINTS)
  params, x = jax.jit(lambda: (lg_model.params(), lg_model.sample(jax.random.key(4), 12)))()
  got = grid.quadrature_log_likelihood(params, x, model=lg_model.config, limit=6.0, points=128)
  assert got.shape == (12,)
  np.testing.assert_allclose(got, lg_model.log_marginal(x), atol=2e-3)


def test_masked_quadrature_is_the_marginal_of_the_observed_pixels(lg_model):
  """log p(x_obs) = log N(x_obs; b_o, W_o W_o^T + s^2 I)."""
  mask, w_o, b_o, s2, _ = _observed_half(lg_model)
  half = len(b_o)

  @jax.jit
  def quadrature_and_closed_form():
    x = lg_model.sample(jax.random.key(6), 5)
    got = grid.quadrature_log_likelihood(lg_model.params(), x, model=lg_model.config,
                                         limit=6.0, points=256, pixel_mask_D=mask)
    want = jax.scipy.stats.multivariate_normal.logpdf(
        x[:, :half], b_o, w_o @ w_o.T + s2 * np.eye(half))
    return got, want

  got, want = quadrature_and_closed_form()
  np.testing.assert_allclose(got, want, atol=1e-3)


def test_grid_posterior_normalizes_to_the_exact_posterior(lg_model):
  @jax.jit
  def draws_and_posterior():
    x = lg_model.sample(jax.random.key(5), 2)
    log_p, z, _ = grid.posterior_on_grid(lg_model.params(), x, model=lg_model.config,
                                         limit=5.0, points=200)
    return x, log_p, z

  x, log_p, z = jax.device_get(draws_and_posterior())
  p = np.exp(log_p)
  np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
  p_mean, _ = lg_model.posterior(x)
  np.testing.assert_allclose(p @ z, p_mean, atol=1e-3)


def test_grid_posterior_of_the_top_half_has_the_closed_form_moments(lg_model):
  """p(z | x_obs) = N(C W_o^T (x_o - b_o) / s^2, C), C = (I + W_o^T W_o / s^2)^{-1}; a
  grid centred on it (not on 0) gives its mean and full covariance."""
  mask, w_o, b_o, s2, cov = _observed_half(lg_model)
  x = np.asarray(lg_model.sample(jax.random.key(8), 1))
  mean = (x[0, : len(b_o)] - b_o) @ w_o / s2 @ cov

  @jax.jit
  def posterior_on_a_grid_off_its_mean():
    return grid.posterior_on_grid(lg_model.params(), x, model=lg_model.config, limit=5.0,
                                  points=256, center_2=mean + 0.3, pixel_mask_D=mask)

  log_p, z, _ = jax.device_get(posterior_on_a_grid_off_its_mean())
  p = np.exp(log_p[0])
  got_mean = p @ z
  got_cov = (z - got_mean).T @ (p[:, None] * (z - got_mean))
  np.testing.assert_allclose(got_mean, mean, atol=1e-3)
  np.testing.assert_allclose(got_cov, cov, atol=2e-3)
  assert abs(cov[0, 1]) > 0.05  # a correlated posterior: the check sees the off-diagonal


def test_grid_kls_match_closed_form_gaussian_kls(lg_model):
  """KL(q || p) and KL(p || q) between a diagonal q and the correlated p(z | x_obs)."""
  mask, w_o, b_o, s2, cov = _observed_half(lg_model)
  x = np.asarray(lg_model.sample(jax.random.key(9), 1))
  mean = (x[0, : len(b_o)] - b_o) @ w_o / s2 @ cov
  q_mean, q_var = mean + np.array([0.2, -0.1]), np.array([0.5, 1.3]) * np.diag(cov)

  @jax.jit
  def grid_kls():
    """KL(q || p), KL(p || q) and KL(p || p) on the grid, of the one image."""
    log_p, z, _ = grid.posterior_on_grid(lg_model.params(), x, model=lg_model.config,
                                         limit=4.0, points=256, center_2=mean,
                                         pixel_mask_D=mask)
    log_q = grid.diag_normal_on_grid(np.asarray(q_mean[None], np.float32),
                                     np.asarray(np.log(q_var)[None], np.float32), z)
    return [grid.kl_on_grid(a, b)[0] for a, b in ((log_q, log_p), (log_p, log_q), (log_p, log_p))]

  q_to_p, p_to_q, p_to_p = grid_kls()
  np.testing.assert_allclose(q_to_p, _gaussian_kl(q_mean, np.diag(q_var), mean, cov), rtol=2e-3)
  np.testing.assert_allclose(p_to_q, _gaussian_kl(mean, cov, q_mean, np.diag(q_var)), rtol=2e-3)
  np.testing.assert_allclose(p_to_p, 0.0, atol=1e-6)
