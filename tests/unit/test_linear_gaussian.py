"""Identities on the linear-Gaussian model, where log p(x) and p(z|x) are closed form."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import linear_gaussian
from vbayes import distributions, numerics
from vbayes.evaluation import importance_sampling as evaluate
from vbayes.objectives import elbo
from vbayes.models import build


def _elbos(model, params, x_BxD, n_keys, kl_estimator):
  """The one-sample ELBO of every image under n_keys keys split from key(7): [n_keys, B]
  (traced inside the calling test's jitted function)."""
  def per_key(key):
    keys = jax.random.split(key, x_BxD.shape[0])
    return jax.vmap(lambda k, x: elbo.elbo(params, k, x, model=model.config,
                                                 kl_estimator=kl_estimator)["elbo"])(keys, x_BxD)
  return jax.vmap(per_key)(jax.random.split(jax.random.key(7), n_keys))


def _kl_gaussians(m1, v1, m2, v2):
  """KL(N(m1, diag v1) || N(m2, diag v2)), rows are examples."""
  return 0.5 * np.sum(v1 / v2 + (m1 - m2) ** 2 / v2 - 1 + np.log(v2 / v1), axis=-1)


def test_elbo_with_exact_posterior_equals_log_marginal_for_every_sample(lg_model):
  @jax.jit
  def draws_and_elbos():
    x = lg_model.sample(jax.random.key(0), 5)
    return x, _elbos(lg_model, lg_model.params(), x, 4, "mc")

  x, elbos = draws_and_elbos()
  expected = lg_model.log_marginal(x)
  np.testing.assert_allclose(elbos, np.broadcast_to(expected, elbos.shape), atol=2e-4)


@pytest.mark.parametrize("kl_estimator", ["analytic", "mc"])
def test_elbo_gap_is_kl_to_the_posterior(lg_model, kl_estimator):
  """log p(x) - E_q[ELBO] = KL(q(z|x) || p(z|x)) > 0, checked within 4 standard errors."""
  n = 20_000

  @jax.jit
  def encoder_draws_and_elbos():
    encoder = linear_gaussian.perturbed_encoder(lg_model)
    x = lg_model.sample(jax.random.key(1), 4)
    return encoder, x, _elbos(lg_model, lg_model.params(encoder), x, n, kl_estimator)

  encoder, x, elbos = jax.device_get(encoder_draws_and_elbos())
  q_mean, q_log_var = np.split(np.asarray(x, np.float64) @ np.asarray(encoder["layer_0"]["w"])
                               + np.asarray(encoder["layer_0"]["b"]), 2, axis=-1)
  p_mean, p_var = lg_model.posterior(np.asarray(x))
  gap = _kl_gaussians(np.asarray(q_mean), np.exp(np.asarray(q_log_var)), p_mean, p_var)
  assert np.all(gap > 0.05)
  log_px = np.asarray(lg_model.log_marginal(x))
  stderr = elbos.std(axis=0) / math.sqrt(n)
  np.testing.assert_array_less(np.abs(elbos.mean(axis=0) - (log_px - gap)), 4 * stderr + 1e-4)
  assert np.all(elbos.mean(axis=0) < log_px)


def test_importance_sampling_converges_to_log_marginal(lg_model):
  """The k-sample estimate's bias shrinks with k (Burda et al. 2016, Thm 1) and reaches log p(x)."""
  ks = (1, 10, 5000)

  @jax.jit
  def draws_and_estimates(seeds):
    """x and, for each k, the estimates of the 20 seeds: [20, 8] each."""
    params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
    x = lg_model.sample(jax.random.key(2), 8)
    estimate = lambda seed, k: evaluate.importance_sampled_log_likelihood(
        params, jax.random.key(seed), x, model=lg_model.config, k=k,
        chunk=numerics.largest_divisor_at_most(k, 1000))[0]
    return x, [jax.vmap(lambda seed, k=k: estimate(seed, k))(seeds) for k in ks]

  x, estimates = jax.device_get(draws_and_estimates(np.arange(20)))
  log_px = np.asarray(lg_model.log_marginal(x))
  errors = {k: float(np.mean(log_px - est.mean(axis=0))) for k, est in zip(ks, estimates)}
  assert errors[1] > errors[10] > abs(errors[5000])
  assert abs(errors[5000]) < 0.01


def test_chunked_running_logsumexp_equals_one_big_logmeanexp(lg_model):
  """Recomputes the same draws unchunked: log (1/k) sum_i w_i over all k at once."""
  k, chunk = 120, 30
  model = build(lg_model.config)

  def unchunked(params, key, x):
    mean, log_var = model.proposal_distribution(params, x)
    eps = jnp.concatenate([jax.random.normal(jax.random.fold_in(key, i),
                                              (mean.shape[0], chunk, mean.shape[1]))
                           for i in range(k // chunk)], axis=1)  # [B, k, L]
    z = mean[:, None] + jnp.exp(0.5 * log_var)[:, None] * eps
    log_joint = (jax.vmap(jax.vmap(model.log_likelihood, in_axes=(None, 0, None)),
                          in_axes=(None, 0, 0))(params, z, x)
                 + distributions.std_normal_log_prob(z))
    log_q = distributions.diag_normal_log_prob(mean[:, None], log_var[:, None], z)
    return jax.nn.logsumexp(log_joint - log_q, axis=1) - math.log(k)

  @jax.jit
  def chunked_and_unchunked():
    params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
    x = lg_model.sample(jax.random.key(3), 3)
    key = jax.random.key(0)
    got, _ = evaluate.importance_sampled_log_likelihood(params, key, x, model=lg_model.config,
                                                        k=k, chunk=chunk)
    return got, unchunked(params, key, x)

  got, expected = chunked_and_unchunked()
  np.testing.assert_allclose(got, expected, rtol=1e-5)
