"""Stochastic VI against the closed-form conditional posterior of a linear-Gaussian model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vbayes import progress, svi


def _params_draws_and_key(lg_model, sample_seed: int, n: int, key_seed: int):
  """The model's parameters (exact encoder), n draws x ~ p(x) from key(sample_seed) and
  key(key_seed): one compiled program."""
  return jax.jit(lambda: (lg_model.params(), lg_model.sample(jax.random.key(sample_seed), n),
                          jax.random.key(key_seed)))()


def _top_half_of(d: int) -> np.ndarray:
  """1 for the first d // 2 coordinates, 0 for the rest: [d] float32."""
  return (np.arange(d) < d // 2).astype(np.float32)


def test_fitted_q_matches_the_mean_field_optimum_of_the_observed_pixels(lg_model):
  """p(z | x_obs) = N(S W_o^T (x_o - b_o) / s^2, S), S = (I + W_o^T W_o / s^2)^{-1}.

  The best diagonal Gaussian in KL(q || p) has p's mean and variances 1 / diag(S^{-1}).
  """
  d = len(lg_model.b_D)
  mask = _top_half_of(d)
  params, x, key = _params_draws_and_key(lg_model, 0, 4, 1)
  mean, log_var, trace = svi.fit_posterior(params, key, x, mask,
                                           model=lg_model.config, steps=3000, num_samples=32,
                                           learning_rate=1e-2)
  trace = np.asarray(trace)
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
  mask = np.asarray(jax.jit(svi.top_half_mask, static_argnums=0)((28, 28)))
  assert mask.shape == (784,) and float(mask.sum()) == 392 and float(mask[391]) == 1.0
  assert float(mask[392]) == 0.0


def test_restarts_keep_the_fit_with_the_best_final_elbo(lg_model):
  d = len(lg_model.b_D)
  mask = _top_half_of(d)
  kwargs = dict(model=lg_model.config, steps=60, num_samples=4, learning_rate=1e-2)

  @jax.jit
  def restarts_and_the_fits_by_hand():
    params, x, key = lg_model.params(), lg_model.sample(jax.random.key(2), 3), jax.random.key(3)
    restarts = svi.fit_posterior_restarts(params, key, x, mask, restarts=5, **kwargs)
    # The same five fits, run by hand: same starting means and keys as inside.
    init_key, fit_key = jax.random.split(key)
    by_hand = svi.fit_posterior(params, fit_key, jnp.tile(x, (5, 1)), mask,
                                init_mean_BxL=jax.random.normal(init_key, (15, 2)), **kwargs)
    return (params, x, key), restarts, by_hand

  (params, x, key), (mean, log_var, trace), (all_mean, _, all_trace) = (
      restarts_and_the_fits_by_hand())
  assert mean.shape == log_var.shape == (3, 2) and trace.shape == (60, 3)
  final = np.asarray(all_trace)[-60:].mean(axis=0).reshape(5, 3)
  best = np.argmax(final, axis=0)
  np.testing.assert_allclose(mean, np.asarray(all_mean).reshape(5, 3, 2)[best, np.arange(3)])
  np.testing.assert_allclose(np.asarray(trace)[-60:].mean(axis=0), final.max(axis=0),
                             rtol=1e-6)
  with pytest.raises(ValueError, match="restarts must be positive"):
    svi.fit_posterior_restarts(params, key, x, mask, restarts=0, **kwargs)


def test_fit_logs_progress_between_calls_and_equals_one_long_call(lg_model, monkeypatch):
  """Steps run STEPS_PER_CALL per jitted call with a progress line between calls, all
  calls of one length one compiled program (the starting state has the types of those
  the calls return); the result does not depend on how the steps are split (step t
  always uses fold_in(key, t))."""
  monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
  params, x, key = _params_draws_and_key(lg_model, 0, 2, 1)
  mask = np.ones((x.shape[1],), np.float32)
  lines = []
  fit = lambda: svi.fit_posterior(params, key, x, mask, model=lg_model.config, steps=300,
                                  log=lines.append)
  svi._fit_steps.clear_cache()  # pylint: disable=protected-access
  mean, log_var, trace = fit()
  assert svi._fit_steps._cache_size() == 1  # pylint: disable=protected-access
  assert [l.split(": ")[1].split(" ")[0] for l in lines] == ["100/300", "200/300"]
  assert all("steps/s, ETA" in l for l in lines)
  monkeypatch.setattr(svi, "STEPS_PER_CALL", 300)
  mean1, log_var1, trace1 = fit()
  np.testing.assert_allclose(mean, mean1, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(trace, trace1, rtol=1e-5, atol=1e-5)
  assert trace.shape == (300, 2)
