"""IWAE, prior importance sampling and the STL / DReG estimators on the
linear-Gaussian model, where log p(x) and p(z|x) are closed form."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util

from tests.helpers import linear_gaussian
from vbayes import distributions
from vbayes.evaluation import importance_sampling as evaluate
from vbayes.objectives import elbo, iwae as iw, prior_is
from vbayes.models import build


def prior_is_from_samples(params, z_KxL, x_D, *, model):
  """log (1/K) sum_i p(x|z_i) for one image's prior samples z_i."""
  return prior_is.prior_is_bounds(params, z_KxL[None], x_D[None], model=model)[0]


def _bound(params, key, x, model, k, estimator="reparam"):
  return iw.iwae(params, key, x, model=model.config, k=k, estimator=estimator)


def test_iwae_with_one_sample_is_the_elbo_with_mc_kl(lg_model):
  params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
  x = lg_model.sample(jax.random.key(0), 3)
  both = jax.jit(lambda key, x: (
      _bound(params, key, x, lg_model, 1)["bound"],
      elbo.elbo(params, key, x, model=lg_model.config, kl_estimator="mc")["elbo"]))
  for b in range(3):
    got, want = both(jax.random.key(10 + b), x[b])
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", iw.ESTIMATORS)
def test_batched_bounds_are_the_per_image_bounds(lg_model, estimator):
  """iwae_bounds over B images equals B one-image calls, in value and in gradient."""
  params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
  x = lg_model.sample(jax.random.key(5), 3)
  eps = jax.random.normal(jax.random.key(6), (3, 7, lg_model.config.latent_dim))
  batched = jax.jit(lambda p: iw.iwae_bounds(p, eps, x, model=lg_model.config,
                                             estimator=estimator))(params)
  one = lambda p, b: iw.iwae_from_noise(p, eps[b], x[b], model=lg_model.config,
                                        estimator=estimator)
  ones = jax.jit(lambda p: [one(p, b) for b in range(3)])(params)
  for name in ("bound", "surrogate", "ess"):
    np.testing.assert_allclose(batched[name], [o[name] for o in ones], rtol=1e-5)
  # And the bound from its definition, image by image: log (1/k) sum_i p(x, z_i) / q(z_i|x).
  model = build(lg_model.config)

  @jax.jit
  def by_definition(x_D, eps_KxL):
    mean, log_var = model.proposal_distribution(params, x_D)
    z = mean + jnp.exp(0.5 * log_var) * eps_KxL
    log_w = jnp.stack([model.log_likelihood(params, z_i, x_D)
                       + distributions.std_normal_log_prob(z_i)
                       - distributions.diag_normal_log_prob(mean, log_var, z_i) for z_i in z])
    return jax.nn.logsumexp(log_w) - math.log(len(z))

  for b in range(3):
    np.testing.assert_allclose(batched["bound"][b], by_definition(x[b], eps[b]), rtol=1e-5)
  grad_batched = jax.jit(jax.grad(lambda p: jnp.sum(iw.iwae_bounds(
      p, eps, x, model=lg_model.config, estimator=estimator)["surrogate"])))(params)
  grad_sum = jax.jit(jax.grad(lambda p: sum(one(p, b)["surrogate"] for b in range(3))))(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               grad_batched, grad_sum)
  z = jax.random.normal(jax.random.key(7), (3, 7, lg_model.config.latent_dim))
  batched, one_by_one = jax.jit(lambda z: (
      prior_is.prior_is_bounds(params, z, x, model=lg_model.config),
      [prior_is_from_samples(params, z[b], x[b], model=lg_model.config) for b in range(3)]))(z)
  np.testing.assert_allclose(batched, one_by_one, rtol=1e-6)


def _mean_bound(params, x, model, k, n_keys, fn=None):
  """Mean over keys and images of the k-sample bound, and its standard error."""
  fn = fn or (lambda key, xx: _bound(params, key, xx, model, k)["bound"])
  keys = jax.random.split(jax.random.key(k), n_keys * x.shape[0]).reshape(n_keys, -1)
  values = jax.jit(jax.vmap(lambda ks: jax.vmap(fn)(ks, x)))(keys)  # [n_keys, B]
  per_key = np.asarray(values.mean(axis=1))
  return per_key.mean(), per_key.std() / math.sqrt(n_keys)


@pytest.mark.slow
def test_iwae_bound_increases_with_k_towards_log_marginal(lg_model):
  params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
  x = lg_model.sample(jax.random.key(1), 4)
  log_px = float(np.mean(lg_model.log_marginal(x)))
  means = {k: _mean_bound(params, x, lg_model, k, 2000 if k < 100 else 200)
           for k in (1, 5, 50, 1000)}
  ks = sorted(means)
  for a, b in zip(ks, ks[1:]):  # Burda et al. Thm 1: L_k <= L_m for k < m
    (ma, sa), (mb, sb) = means[a], means[b]
    assert mb - ma > -4 * math.hypot(sa, sb), (a, b, means)
  assert means[50][0] > means[1][0] + 10 * math.hypot(means[50][1], means[1][1])
  assert all(m <= log_px + 4 * s for m, s in means.values())
  m, s = means[1000]
  assert log_px - m < 0.01 + 4 * s


@pytest.mark.slow
def test_prior_importance_sampling_converges_to_log_marginal(lg_model):
  params = lg_model.params()
  x = lg_model.sample(jax.random.key(2), 4)
  log_px = float(np.mean(lg_model.log_marginal(x)))
  gaps = {}
  for k in (10, 1000, 100_000):
    def fn(key, xx, k=k):
      z = jax.random.normal(key, (k, lg_model.config.latent_dim))
      return prior_is_from_samples(params, z, xx, model=lg_model.config)
    mean, stderr = _mean_bound(params, x, lg_model, k, 50 if k > 1000 else 500, fn)
    gaps[k] = (log_px - mean, stderr)
  assert gaps[10][0] > gaps[1000][0] > gaps[100_000][0] - 4 * gaps[100_000][1]
  assert gaps[100_000][0] < 0.02 + 4 * gaps[100_000][1]
  assert gaps[10][0] > 0.2  # the prior is a poor proposal for a sharp posterior


def _grads(params, key, x, lg_model, k, estimator):
  return _iwae_gradient(params, key, x, lg_model.config, k, estimator)


@functools.partial(jax.jit, static_argnums=(3, 4, 5))  # one program per model, k, estimator
def _iwae_gradient(params, key, x, model, k, estimator):
  def loss(p):
    out = jax.vmap(lambda kk, xx: iw.iwae(p, kk, xx, model=model, k=k,
                                          estimator=estimator)["surrogate"])(
        jax.random.split(key, x.shape[0]), x)
    return jnp.mean(out)
  return jax.grad(loss)(params)


def _flat(tree):
  return np.concatenate([np.ravel(a) for a in jax.tree.leaves(tree)])


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_path_estimators_vanish_at_the_exact_posterior(lg_model, estimator):
  """With q = p(z|x), log w_i = log p(x) for every z_i: no path derivative is left."""
  params = lg_model.params()
  x = lg_model.sample(jax.random.key(3), 3)
  for seed in range(5):
    got = _flat(_grads(params, jax.random.key(seed), x, lg_model, 5, estimator)["encoder"])
    plain = _flat(_grads(params, jax.random.key(seed), x, lg_model, 5, "reparam")["encoder"])
    assert np.max(np.abs(got)) < 1e-4, got
    assert np.max(np.abs(plain)) > 1e-2  # the score term of the plain estimator is not zero


@pytest.mark.slow
def test_decoder_gradient_is_the_same_for_every_estimator(lg_model):
  params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
  x = lg_model.sample(jax.random.key(4), 3)
  dec = {e: _grads(params, jax.random.key(0), x, lg_model, 7, e)["decoder"]
         for e in ("reparam", "stl", "dreg")}
  for e in ("stl", "dreg"):
    np.testing.assert_allclose(_flat(dec[e]), _flat(dec["reparam"]), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_dreg_encoder_gradient_is_unbiased(lg_model):
  """Averaged over many keys, DReG and the plain IWAE encoder gradient agree within
  their standard errors; STL (biased for k > 1, Tucker et al. 2019) does not."""
  params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model, shift=0.5, widen=-0.6))
  x = lg_model.sample(jax.random.key(5), 2)
  n = 4000
  per_key = {}
  for estimator in ("reparam", "dreg", "stl"):
    g = jax.vmap(lambda key, e=estimator: _flat_jnp(
        _grads(params, key, x, lg_model, 5, e)["encoder"]))(
        jax.random.split(jax.random.key(6), n))
    per_key[estimator] = np.asarray(g)
  def z_scores(a, b):
    se = np.sqrt(per_key[a].var(0) / n + per_key[b].var(0) / n)
    return (per_key[a].mean(0) - per_key[b].mean(0)) / se
  assert np.max(np.abs(z_scores("dreg", "reparam"))) < 4.5
  assert np.max(np.abs(z_scores("stl", "reparam"))) > 6  # the test can tell a bias


def _flat_jnp(tree):
  return jnp.concatenate([jnp.ravel(a) for a in jax.tree.leaves(tree)])


@pytest.mark.slow
def test_iwae_bound_gradients_match_finite_differences(lg_model):
  params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
  x = lg_model.sample(jax.random.key(7), 1)[0]
  eps = jax.random.normal(jax.random.key(8), (4, lg_model.config.latent_dim))
  with jax.enable_x64(True):
    params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    bound = jax.jit(lambda p: iw.iwae_from_noise(p, eps.astype(jnp.float64),
                                                 x.astype(jnp.float64),
                                                 model=lg_model.config)["bound"])
    test_util.check_grads(bound, (params64,), order=2, modes=("rev",))


@pytest.mark.slow
def test_huge_log_weights_stay_finite_and_correct_in_float32(lg_model):
  """x far out in the tails: log p(x) ~ -1e4 and k = 5000 weights of that size."""
  params = lg_model.params()  # exact posterior: every weight equals p(x)
  direction = lg_model.w_DxL[:, 0] / np.linalg.norm(lg_model.w_DxL[:, 0])
  x = jnp.asarray(lg_model.b_D + 80.0 * direction + 60.0 * np.roll(direction, 1), jnp.float32)
  log_px = float(lg_model.log_marginal(x[None])[0])
  assert -3e4 < log_px < -5e3, log_px
  est, _ = evaluate.importance_sampled_log_likelihood(params, jax.random.key(0), x[None],
                                                      model=lg_model.config, k=5000, chunk=500)
  bound = jax.jit(lambda key, x: iw.iwae(params, key, x, model=lg_model.config, k=5000))(
      jax.random.key(1), x)["bound"]
  for value in (float(est[0]), float(bound)):
    assert math.isfinite(value)
    assert abs(value - log_px) < 1e-5 * abs(log_px) + 0.05
