"""IWAE, prior importance sampling and the STL / DReG estimators on the
linear-Gaussian model, where log p(x) and p(z|x) are closed form. A test computes its
parameters, draws and estimates in one compiled program where it can, and compares them on
the host."""

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
  @jax.jit
  def iwae_and_elbo(seed_B):
    """Image b's one-sample IWAE bound and ELBO, both from the key seed_B[b]."""
    params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
    x = lg_model.sample(jax.random.key(0), 3)
    both = lambda key, x: (
        _bound(params, key, x, lg_model, 1)["bound"],
        elbo.elbo(params, key, x, model=lg_model.config, kl_estimator="mc")["elbo"])
    return jax.vmap(lambda seed, x_D: both(jax.random.key(seed), x_D))(seed_B, x)

  got, want = (np.asarray(a) for a in iwae_and_elbo(10 + np.arange(3)))
  for b in range(3):
    np.testing.assert_allclose(got[b], want[b], rtol=1e-6)


@pytest.fixture(scope="module")
def three_images():
  """What test_batched_bounds_are_the_per_image_bounds uses and checks the same for every
  estimator, in one compiled program: the linear-Gaussian model (as the lg_model fixture
  makes it) with a perturbed encoder, three images x with the noise eps of 7 samples each,
  each image's bound from its definition, and prior importance sampling from the draws z of
  7 samples each over the three images at once and image by image."""
  lg_model = linear_gaussian.make()
  model = build(lg_model.config)

  def by_definition(params, x_D, eps_KxL):
    """log (1/k) sum_i p(x, z_i) / q(z_i|x), sample by sample."""
    mean, log_var = model.proposal_distribution(params, x_D)
    z = mean + jnp.exp(0.5 * log_var) * eps_KxL
    log_w = jnp.stack([model.log_likelihood(params, z_i, x_D)
                       + distributions.std_normal_log_prob(z_i)
                       - distributions.diag_normal_log_prob(mean, log_var, z_i) for z_i in z])
    return jax.nn.logsumexp(log_w) - math.log(len(z))

  @jax.jit
  def inputs_and_estimator_free_values():
    params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
    x = lg_model.sample(jax.random.key(5), 3)
    eps = jax.random.normal(jax.random.key(6), (3, 7, lg_model.config.latent_dim))
    z = jax.random.normal(jax.random.key(7), (3, 7, lg_model.config.latent_dim))
    return {
        "params": params, "x": x, "eps": eps,
        "by_definition": jax.vmap(functools.partial(by_definition, params))(x, eps),
        "prior_is_batched": prior_is.prior_is_bounds(params, z, x, model=lg_model.config),
        "prior_is_one_by_one": [prior_is_from_samples(params, z[b], x[b], model=lg_model.config)
                                for b in range(3)]}

  return lg_model, jax.tree.map(np.asarray, inputs_and_estimator_free_values())


@pytest.mark.slow
@pytest.mark.parametrize("estimator", iw.ESTIMATORS)
def test_batched_bounds_are_the_per_image_bounds(three_images, estimator):
  """iwae_bounds over B images equals B one-image calls, in value and in gradient."""
  lg_model, shared = three_images

  @jax.jit
  def batched_and_one_by_one(params, x, eps):
    batched = lambda p: iw.iwae_bounds(p, eps, x, model=lg_model.config, estimator=estimator)
    one = lambda p, b: iw.iwae_from_noise(p, eps[b], x[b], model=lg_model.config,
                                          estimator=estimator)
    return {
        "batched": batched(params), "ones": [one(params, b) for b in range(3)],
        "grad_batched": jax.grad(lambda p: jnp.sum(batched(p)["surrogate"]))(params),
        "grad_sum": jax.grad(lambda p: sum(one(p, b)["surrogate"] for b in range(3)))(params)}

  out = jax.tree.map(np.asarray, batched_and_one_by_one(shared["params"], shared["x"],
                                                        shared["eps"]))
  batched, ones = out["batched"], out["ones"]
  for name in ("bound", "surrogate", "ess"):
    np.testing.assert_allclose(batched[name], [o[name] for o in ones], rtol=1e-5)
  # And the bound from its definition, image by image: log (1/k) sum_i p(x, z_i) / q(z_i|x).
  for b in range(3):
    np.testing.assert_allclose(batched["bound"][b], shared["by_definition"][b], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               out["grad_batched"], out["grad_sum"])
  np.testing.assert_allclose(shared["prior_is_batched"], shared["prior_is_one_by_one"],
                             rtol=1e-6)


def _per_key_means(bound, x, k, n_keys):
  """[n_keys]: the mean over the images x of bound(key, x_D), for n_keys * B keys split
  from key(k)."""
  keys = jax.random.split(jax.random.key(k), n_keys * x.shape[0]).reshape(n_keys, -1)
  return jax.vmap(lambda ks: jax.vmap(bound)(ks, x))(keys).mean(axis=1)


def _mean_and_stderr(per_key_means):
  """Mean over keys and images of a bound, and its standard error, from `_per_key_means`."""
  per_key = np.asarray(per_key_means)
  return per_key.mean(), per_key.std() / math.sqrt(len(per_key))


@pytest.mark.slow
def test_iwae_bound_increases_with_k_towards_log_marginal(lg_model):
  @jax.jit
  def images_and_per_key_means():
    params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
    x = lg_model.sample(jax.random.key(1), 4)
    return x, {k: _per_key_means(
        lambda key, x_D, k=k: _bound(params, key, x_D, lg_model, k)["bound"], x, k,
        2000 if k < 100 else 200) for k in (1, 5, 50, 1000)}

  x, per_key_means = images_and_per_key_means()
  log_px = float(np.mean(lg_model.log_marginal(x)))
  means = {k: _mean_and_stderr(m) for k, m in per_key_means.items()}
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
  @jax.jit
  def images_and_per_key_means():
    params = lg_model.params()
    x = lg_model.sample(jax.random.key(2), 4)

    def prior_is_bound(key, x_D, k):
      z = jax.random.normal(key, (k, lg_model.config.latent_dim))
      return prior_is_from_samples(params, z, x_D, model=lg_model.config)

    return x, {k: _per_key_means(functools.partial(prior_is_bound, k=k), x, k,
                                 50 if k > 1000 else 500)
               for k in (10, 1000, 100_000)}

  x, per_key_means = images_and_per_key_means()
  log_px = float(np.mean(lg_model.log_marginal(x)))
  gaps = {}
  for k, per_key in per_key_means.items():
    mean, stderr = _mean_and_stderr(per_key)
    gaps[k] = (log_px - mean, stderr)
  assert gaps[10][0] > gaps[1000][0] > gaps[100_000][0] - 4 * gaps[100_000][1]
  assert gaps[100_000][0] < 0.02 + 4 * gaps[100_000][1]
  assert gaps[10][0] > 0.2  # the prior is a poor proposal for a sharp posterior


def _grads(params, key, x, lg_model, k, estimator):
  """The gradient of the mean over the images x of the k-sample surrogate, one key per
  image split from `key`."""
  def loss(p):
    out = jax.vmap(lambda kk, xx: iw.iwae(p, kk, xx, model=lg_model.config, k=k,
                                          estimator=estimator)["surrogate"])(
        jax.random.split(key, x.shape[0]), x)
    return jnp.mean(out)
  return jax.grad(loss)(params)


def _flat(tree):
  return jnp.concatenate([jnp.ravel(a) for a in jax.tree.leaves(tree)])


@pytest.fixture(scope="module")
def exact_posterior_encoder_gradients():
  """Each estimator's encoder gradient (flattened) at the exact posterior, k = 5 for each of
  three images, for each of the keys 0..4: one compiled program, for the tests of every
  estimator. The model is the one the lg_model fixture makes."""
  lg_model = linear_gaussian.make()

  @jax.jit
  def by_estimator(seeds):
    params = lg_model.params()
    x = lg_model.sample(jax.random.key(3), 3)
    encoder_gradient = lambda seed, e: _flat(
        _grads(params, jax.random.key(seed), x, lg_model, 5, e)["encoder"])
    return {e: jax.vmap(functools.partial(encoder_gradient, e=e))(seeds) for e in iw.ESTIMATORS}

  return {e: np.asarray(g) for e, g in by_estimator(np.arange(5)).items()}


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_path_estimators_vanish_at_the_exact_posterior(exact_posterior_encoder_gradients,
                                                       estimator):
  """With q = p(z|x), log w_i = log p(x) for every z_i: no path derivative is left."""
  by_seed = exact_posterior_encoder_gradients
  for got, plain in zip(by_seed[estimator], by_seed["reparam"]):
    assert np.max(np.abs(got)) < 1e-4, got
    assert np.max(np.abs(plain)) > 1e-2  # the score term of the plain estimator is not zero


@pytest.mark.slow
def test_decoder_gradient_is_the_same_for_every_estimator(lg_model):
  @jax.jit
  def decoder_gradients():
    params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
    x = lg_model.sample(jax.random.key(4), 3)
    return {e: _flat(_grads(params, jax.random.key(0), x, lg_model, 7, e)["decoder"])
            for e in ("reparam", "stl", "dreg")}

  dec = decoder_gradients()
  for e in ("stl", "dreg"):
    np.testing.assert_allclose(dec[e], dec["reparam"], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_dreg_encoder_gradient_is_unbiased(lg_model):
  """Averaged over many keys, DReG and the plain IWAE encoder gradient agree within
  their standard errors; STL (biased for k > 1, Tucker et al. 2019) does not."""
  n = 4000

  @jax.jit
  def encoder_gradients_per_key():
    params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model, shift=0.5,
                                                               widen=-0.6))
    x = lg_model.sample(jax.random.key(5), 2)
    keys = jax.random.split(jax.random.key(6), n)
    encoder_gradient = lambda key, e: _flat(_grads(params, key, x, lg_model, 5, e)["encoder"])
    return {e: jax.vmap(functools.partial(encoder_gradient, e=e))(keys)
            for e in ("reparam", "dreg", "stl")}

  per_key = {e: np.asarray(g) for e, g in encoder_gradients_per_key().items()}
  def z_scores(a, b):
    se = np.sqrt(per_key[a].var(0) / n + per_key[b].var(0) / n)
    return (per_key[a].mean(0) - per_key[b].mean(0)) / se
  assert np.max(np.abs(z_scores("dreg", "reparam"))) < 4.5
  assert np.max(np.abs(z_scores("stl", "reparam"))) > 6  # the test can tell a bias


@pytest.mark.slow
def test_iwae_bound_gradients_match_finite_differences(lg_model):
  params, x, eps = jax.jit(lambda: (
      lg_model.params(linear_gaussian.perturbed_encoder(lg_model)),
      lg_model.sample(jax.random.key(7), 1)[0],
      jax.random.normal(jax.random.key(8), (4, lg_model.config.latent_dim))))()
  with jax.enable_x64(True):
    params64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    bound = jax.jit(lambda p: iw.iwae_from_noise(p, eps.astype(jnp.float64),
                                                 x.astype(jnp.float64),
                                                 model=lg_model.config)["bound"])
    test_util.check_grads(bound, (params64,), order=2, modes=("rev",))


@pytest.mark.slow
def test_huge_log_weights_stay_finite_and_correct_in_float32(lg_model):
  """x far out in the tails: log p(x) ~ -1e4 and k = 5000 weights of that size."""
  direction = lg_model.w_DxL[:, 0] / np.linalg.norm(lg_model.w_DxL[:, 0])
  x = np.asarray(lg_model.b_D + 80.0 * direction + 60.0 * np.roll(direction, 1), np.float32)
  log_px = float(lg_model.log_marginal(x[None])[0])
  assert -3e4 < log_px < -5e3, log_px

  @jax.jit
  def estimate_and_bound(x):
    params = lg_model.params()  # exact posterior: every weight equals p(x)
    est, _ = evaluate.importance_sampled_log_likelihood(
        params, jax.random.key(0), x[None], model=lg_model.config, k=5000, chunk=500)
    return est[0], iw.iwae(params, jax.random.key(1), x, model=lg_model.config, k=5000)["bound"]

  for value in map(float, estimate_and_bound(x)):
    assert math.isfinite(value)
    assert abs(value - log_px) < 1e-5 * abs(log_px) + 0.05
