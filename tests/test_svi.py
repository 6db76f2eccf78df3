"""Stochastic VI against the closed-form conditional posterior of a linear-Gaussian model."""

import jax
import jax.numpy as jnp
import numpy as np

from vbayes import svi


def test_fitted_q_matches_the_mean_field_optimum_of_the_observed_pixels(lg_model):
  """p(z | x_obs) = N(S W_o^T (x_o - b_o) / s^2, S), S = (I + W_o^T W_o / s^2)^{-1}.

  The best diagonal Gaussian in KL(q || p) has p's mean and variances 1 / diag(S^{-1}).
  """
  d = len(lg_model.b_D)
  mask = (jnp.arange(d) < d // 2).astype(jnp.float32)
  x = lg_model.sample(jax.random.key(0), 4)
  mean, log_var, trace = svi.fit_posterior(lg_model.params(), jax.random.key(1), x, mask,
                                           model=lg_model.config, steps=3000, num_samples=32,
                                           learning_rate=1e-2)
  w_o, b_o, s2 = lg_model.w_DxL[: d // 2], lg_model.b_D[: d // 2], lg_model.scale**2
  precision = np.eye(2) + w_o.T @ w_o / s2
  assert abs(precision[0, 1]) > 0.1  # correlated: mean field is a real approximation here
  cov = np.linalg.inv(precision)
  want_mean = (np.asarray(x)[:, : d // 2] - b_o) @ w_o / s2 @ cov
  np.testing.assert_allclose(mean, want_mean, atol=0.03)
  np.testing.assert_allclose(np.exp(log_var), np.broadcast_to(1 / np.diag(precision), (4, 2)),
                             rtol=0.1)
  assert float(trace[-100:].mean()) > float(trace[:10].mean())


def test_top_half_mask():
  mask = svi.top_half_mask((28, 28))
  assert mask.shape == (784,) and float(mask.sum()) == 392 and float(mask[391]) == 1.0
  assert float(mask[392]) == 0.0
