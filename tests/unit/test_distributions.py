"""Log-densities and KL against independent formulas. Each test computes its values in one
compiled program and compares them on the host."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vbayes import distributions


def test_bernoulli_log_prob_matches_probabilities():
  logits = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], np.float32)
  x = np.array([0.0, 1.0, 1.0, 0.0, 1.0], np.float32)

  @jax.jit
  def got_and_expected(logits, x):
    p = jax.nn.sigmoid(logits)
    expected = jnp.sum(x * jnp.log(p) + (1 - x) * jnp.log1p(-p))
    return distributions.bernoulli_log_prob(logits, x), expected

  got, expected = got_and_expected(logits, x)
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_bernoulli_log_prob_is_finite_for_extreme_logits():
  logits = np.array([-200.0, 200.0], np.float32)
  unlikely, likely = jax.jit(lambda logits: (
      distributions.bernoulli_log_prob(logits, jnp.array([1.0, 0.0])),
      distributions.bernoulli_log_prob(logits, jnp.array([0.0, 1.0]))))(logits)
  assert np.isfinite(unlikely)
  np.testing.assert_allclose(likely, 0.0, atol=1e-6)


def test_softplus_and_its_gradient_match_jax_nn():
  l = np.array([-800.0, -30.0, -1.5, -1e-3, 0.0, 1e-3, 2.0, 40.0, 900.0], np.float32)
  values, jax_values, grad, sigmoid = jax.jit(lambda l: (
      distributions.softplus(l), jax.nn.softplus(l),
      jax.vmap(jax.grad(distributions.softplus))(l), jax.nn.sigmoid(l)))(l)
  np.testing.assert_allclose(values, jax_values, rtol=1e-6)
  np.testing.assert_allclose(grad, sigmoid, rtol=1e-6, atol=1e-30)


def test_gaussian_log_prob_matches_scipy():
  mean, log_scale, x = (np.array(values, np.float32)
                        for values in ([0.1, -1.0], [0.3, -0.7], [0.5, 0.2]))
  got, expected, got_std, expected_std = jax.jit(lambda mean, log_scale, x: (
      distributions.gaussian_log_prob(mean, log_scale, x),
      jnp.sum(jax.scipy.stats.norm.logpdf(x, mean, jnp.exp(log_scale))),
      distributions.std_normal_log_prob(x),
      jnp.sum(jax.scipy.stats.norm.logpdf(x))))(mean, log_scale, x)
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  np.testing.assert_allclose(got_std, expected_std, rtol=1e-6)


@functools.partial(jax.jit, static_argnames=("prior", "n"))
def _monte_carlo_and_analytic_kl(seed, prior, n):
  """The mean and standard deviation of log q(z) - log p(z) over n draws z ~ q, and the
  closed-form KL(q || p): one program per prior, for every seed."""
  q = distributions.DiagNormal(jnp.array([0.5, -1.2, 0.0, 2.0]) * (seed + 1),
                               jnp.array([-1.0, 0.3, 0.0, -2.5]))
  p = (distributions.StdNormal(4) if prior == "standard" else
       distributions.DiagNormal(jnp.array([0.3, 0.0, -1.0, 1.5]), jnp.array([0.5, -0.4, 0.0, 1.0])))
  z = q.sample(jax.random.key(seed), n)  # [n, 4]
  samples = q.log_prob(z) - p.log_prob(z)
  return jnp.mean(samples), jnp.std(samples), distributions.kl_divergence(q, p)


@pytest.mark.parametrize("prior", ["standard", "diagonal"])
@pytest.mark.parametrize("seed", [0, 1])
def test_analytic_kl_equals_monte_carlo_kl(seed, prior):
  """KL(q || p) = E_q[log q(z) - log p(z)]; the MC mean must lie within 4 standard errors,
  for p = N(0, I) and for p = N(m, diag v)."""
  n = 200_000
  mean, sd, analytic = map(float, _monte_carlo_and_analytic_kl(seed, prior, n))
  stderr = sd / math.sqrt(n)
  assert abs(mean - analytic) < 4 * stderr
  assert analytic > 0


def test_kl_is_zero_at_the_prior_and_accurate_near_it():
  # The inputs are arguments, so that the program computes at run time (constants would
  # be folded by the compiler, which evaluates them by other code).
  at_prior, near_prior = jax.jit(lambda zeros_3, log_var_1: (
      distributions.kl_diag_normal_std_normal(zeros_3, zeros_3),
      distributions.kl_diag_normal_std_normal(jnp.zeros(1), log_var_1)))(
          np.zeros(3, np.float32), np.full((1,), 1e-4, np.float32))
  assert float(at_prior) == 0.0
  # v - 1 - log v = t^2 / 2 + O(t^3) for log v = t; in float32 exp(t) - 1 - t would be
  # off by ~1e-7 (all error), expm1 keeps it to float32 rounding of expm1(t) (~2e-3 relative).
  np.testing.assert_allclose(near_prior, 0.25e-8, rtol=1e-2)
