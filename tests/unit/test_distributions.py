"""Log-densities and KL against independent formulas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vbayes import distributions


def test_bernoulli_log_prob_matches_probabilities():
  logits = jnp.array([-3.0, -0.5, 0.0, 0.7, 4.0])
  x = jnp.array([0.0, 1.0, 1.0, 0.0, 1.0])
  p = jax.nn.sigmoid(logits)
  expected = jnp.sum(x * jnp.log(p) + (1 - x) * jnp.log1p(-p))
  np.testing.assert_allclose(distributions.bernoulli_log_prob(logits, x), expected, rtol=1e-6)


def test_bernoulli_log_prob_is_finite_for_extreme_logits():
  logits = jnp.array([-200.0, 200.0])
  assert np.isfinite(distributions.bernoulli_log_prob(logits, jnp.array([1.0, 0.0])))
  np.testing.assert_allclose(distributions.bernoulli_log_prob(logits, jnp.array([0.0, 1.0])), 0.0,
                             atol=1e-6)


def test_softplus_and_its_gradient_match_jax_nn():
  l = jnp.array([-800.0, -30.0, -1.5, -1e-3, 0.0, 1e-3, 2.0, 40.0, 900.0])
  np.testing.assert_allclose(distributions.softplus(l), jax.nn.softplus(l), rtol=1e-6)
  grad = jax.vmap(jax.grad(distributions.softplus))(l)
  np.testing.assert_allclose(grad, jax.nn.sigmoid(l), rtol=1e-6, atol=1e-30)


def test_gaussian_log_prob_matches_scipy():
  mean, log_scale, x = jnp.array([0.1, -1.0]), jnp.array([0.3, -0.7]), jnp.array([0.5, 0.2])
  expected = jnp.sum(jax.scipy.stats.norm.logpdf(x, mean, jnp.exp(log_scale)))
  np.testing.assert_allclose(distributions.gaussian_log_prob(mean, log_scale, x), expected,
                             rtol=1e-6)
  np.testing.assert_allclose(distributions.std_normal_log_prob(x),
                             jnp.sum(jax.scipy.stats.norm.logpdf(x)), rtol=1e-6)


@pytest.mark.parametrize("prior", ["standard", "diagonal"])
@pytest.mark.parametrize("seed", [0, 1])
def test_analytic_kl_equals_monte_carlo_kl(seed, prior):
  """KL(q || p) = E_q[log q(z) - log p(z)]; the MC mean must lie within 4 standard errors,
  for p = N(0, I) and for p = N(m, diag v)."""
  q = distributions.DiagNormal(jnp.array([0.5, -1.2, 0.0, 2.0]) * (seed + 1),
                               jnp.array([-1.0, 0.3, 0.0, -2.5]))
  p = (distributions.StdNormal(4) if prior == "standard" else
       distributions.DiagNormal(jnp.array([0.3, 0.0, -1.0, 1.5]), jnp.array([0.5, -0.4, 0.0, 1.0])))
  n = 200_000
  z = q.sample(jax.random.key(seed), n)  # [n, 4]
  samples = q.log_prob(z) - p.log_prob(z)
  stderr = float(jnp.std(samples)) / math.sqrt(n)
  analytic = float(distributions.kl_divergence(q, p))
  assert abs(float(jnp.mean(samples)) - analytic) < 4 * stderr
  assert analytic > 0


def test_kl_is_zero_at_the_prior_and_accurate_near_it():
  assert float(distributions.kl_diag_normal_std_normal(jnp.zeros(3), jnp.zeros(3))) == 0.0
  tiny = jnp.full((1,), 1e-4)
  # v - 1 - log v = t^2 / 2 + O(t^3) for log v = t; in float32 exp(t) - 1 - t would be
  # off by ~1e-7 (all error), expm1 keeps it to float32 rounding of expm1(t) (~2e-3 relative).
  np.testing.assert_allclose(distributions.kl_diag_normal_std_normal(jnp.zeros(1), tiny),
                             0.25e-8, rtol=1e-2)
