"""The VampPrior (Tomczak & Welling 2018): p(z) = (1/K) sum_k q(z | u_k) with learned
pseudo-inputs u_k, a new prior behind the model interface (vbayes/models/priors.py)."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vbayes import config as config_lib, distributions
from vbayes.config import ConfigError
from vbayes.evaluation import grid
from vbayes.evaluation import importance_sampling as evaluate
from vbayes.models import build
from vbayes.overrides import with_overrides
from vbayes.models.networks import gated
from vbayes.models.networks import mlp
from vbayes.models.priors import vamp
from vbayes.models.proposals import gaussian
from tests.helpers import model_checks

DATA, LATENT, PSEUDO = 6, 2, 7


def vamp_model(latent_dim: int = LATENT):
  return config_lib.ModelConfig(data_dim=DATA, latent_dim=latent_dim,
                                network=mlp.Config(hidden_sizes=(8,)),
                                prior=vamp.Config(num_pseudo_inputs=PSEUDO))


@functools.cache
def built_vamp_model():
  return build(vamp_model())


@jax.jit
def _mixture_log_prob(mean_CxL, log_var_CxL, z_xL):
  return distributions.DiagNormalMixture(mean_CxL, log_var_CxL).log_prob(z_xL)


def test_the_mixture_density_is_the_explicit_mixture():
  """log p(z) against (1/C) sum_c N(z; m_c, diag v_c) summed component by component in
  float64, for z of batch shape [3, 5]."""
  rng = np.random.default_rng(0)
  mean, log_var = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)) * 0.5
  z = rng.normal(size=(3, 5, 3)) * 1.5
  got = _mixture_log_prob(*(np.asarray(a, np.float32) for a in (mean, log_var, z)))
  density = np.zeros(z.shape[:-1])
  for m, lv in zip(mean, log_var):
    v = np.exp(lv)
    density += np.exp(-0.5 * np.sum((z - m) ** 2 / v + np.log(2 * np.pi * v), axis=-1)) / 4
  np.testing.assert_allclose(got, np.log(density), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("clusters, tolerance", [(500, 1e-3), (2, 0.05)])
def test_the_mixture_density_keeps_its_precision_for_narrow_components(clusters, tolerance):
  """500 components in 50 dimensions, sd 0.01: float32 log p(z) against float64, within
  1e-3 nats for means spread out (a plain expansion of the square as matrix products
  lost 0.5) and 0.05 when they sit in two tight clusters (hundreds of components count
  for each z, beyond the ones recomputed exactly)."""
  rng = np.random.default_rng(1)
  centres = rng.normal(size=(clusters, 50)) * 2
  mean = centres[rng.permutation(500) % clusters] + (0.001 if clusters < 500 else 0) * \
      rng.normal(size=(500, 50))
  log_var = np.log(1e-4) + 0.1 * rng.normal(size=(500, 50))
  z = mean[rng.integers(0, 500, 64)] + np.exp(0.5 * log_var[:64]) * rng.normal(size=(64, 50))
  got = _mixture_log_prob(*(np.asarray(a, np.float32) for a in (mean, log_var, z)))
  log_normal = -0.5 * (((z[:, None] - mean) ** 2 / np.exp(log_var)).sum(-1)
                       + log_var.sum(-1) + 50 * np.log(2 * np.pi))
  want = np.logaddexp.reduce(log_normal, axis=-1) - np.log(500)
  np.testing.assert_allclose(got, want, atol=tolerance, rtol=0)


def test_the_vamp_prior_is_the_encoders_posteriors_at_the_pseudo_inputs():
  model = built_vamp_model()

  @jax.jit
  def prior_and_posteriors():
    params = model.init(jax.random.key(0))
    prior = model.prior_distribution(params)
    q = model.proposal_distribution(params, params["prior"]["pseudo_inputs"])
    return params["prior"]["pseudo_inputs"], prior, q

  pseudo_inputs, prior, q = prior_and_posteriors()
  assert pseudo_inputs.shape == (PSEUDO, DATA)
  np.testing.assert_array_equal(prior.mean, q.mean)
  np.testing.assert_array_equal(prior.log_var, q.log_var)


def test_the_vamp_prior_integrates_to_one_on_a_grid():
  """A midpoint sum of p(z) over a 400^2 grid covering its components' mass is 1."""
  model = built_vamp_model()

  @jax.jit
  def params_and_spread():
    params = model.init(jax.random.key(1))
    prior = model.prior_distribution(params)
    return params, jnp.max(jnp.abs(prior.mean)) + 6 * jnp.max(jnp.exp(0.5 * prior.log_var))

  params, spread = params_and_spread()

  @jax.jit
  def total_mass(params):  # the grid's extent (spread) is a constant of the program
    z_Gx2, log_cell = grid.latent_grid(float(spread), 400)
    return jnp.exp(jax.nn.logsumexp(model.log_prior(params, z_Gx2)) + log_cell)

  assert abs(float(total_mass(params)) - 1.0) < 1e-3


def test_prior_samples_have_the_mixtures_moments():
  """E[z] = mean_c m_c and E[z^2] = mean_c (m_c^2 + v_c), within 5 standard errors of
  40000 draws (the draws' own sd / sqrt(n))."""
  model = built_vamp_model()

  @jax.jit
  def prior_and_samples():
    prior = model.prior_distribution(model.init(jax.random.key(2)))
    return prior, prior.sample(jax.random.key(3), 40000)

  prior, z = prior_and_samples()
  z = np.asarray(z, np.float64)
  mean = np.mean(np.asarray(prior.mean), axis=0)
  second = np.mean(np.asarray(prior.mean) ** 2 + np.exp(np.asarray(prior.log_var)), axis=0)
  n = len(z)
  assert np.all(np.abs(z.mean(0) - mean) < 5 * z.std(0) / math.sqrt(n))
  assert np.all(np.abs((z**2).mean(0) - second) < 5 * (z**2).std(0) / math.sqrt(n))


def test_the_prior_term_trains_the_pseudo_inputs_and_the_encoder():
  model = built_vamp_model()

  @jax.jit
  def prior_gradients():
    z = jax.random.normal(jax.random.key(5), (9, LATENT))
    return jax.grad(lambda p: jnp.sum(model.log_prior(p, z)))(model.init(jax.random.key(4)))

  grads = prior_gradients()
  assert np.max(np.abs(np.asarray(grads["prior"]["pseudo_inputs"]))) > 0
  assert np.max(np.abs(np.asarray(grads["encoder"]["layer_0"]["w"]))) > 0


def test_iwae_with_one_sample_is_the_monte_carlo_elbo():
  model = built_vamp_model()

  @jax.jit
  def params_images_and_noise():
    return (model.init(jax.random.key(6)),
            jax.random.bernoulli(jax.random.key(7), 0.3, (4, DATA)).astype(jnp.float32),
            jax.random.normal(jax.random.key(8), (4, LATENT)))

  params, x, eps = params_images_and_noise()
  model_checks.assert_iwae_with_one_sample_is_the_monte_carlo_elbo(model, params, x, eps)


@pytest.mark.parametrize("objective", model_checks.ENCODER_OBJECTIVES,
                         ids=model_checks.objective_id)
def test_every_objective_that_applies_trains_a_vamp_model(objective):
  """Two jitted calls of 50 steps on 4Frames-sized binary data, traced once, of the
  Tomczak & Welling kind of VampPrior model (gated nets, the pseudo-inputs clipped to
  [0, 1], the encoder's log-variance to [-6, 2]): the loss falls from the first 10 steps
  to the last 10, and the pseudo-inputs and every weight of the encoder and decoder move."""
  model = dataclasses.replace(
      vamp_model(), data_dim=4, network=gated.Config(hidden_sizes=(5, 4)),
      prior=vamp.Config(num_pseudo_inputs=PSEUDO, pseudo_input_limits=(0.0, 1.0)),
      proposal=gaussian.Config(log_var_limits=(-6.0, 2.0)))
  config = config_lib.TrainConfig(model=model, data=config_lib.DataConfig(dataset="4frames"),
                                  objective=objective, batch_size=20, learning_rate=1e-2)
  x = jnp.asarray(np.eye(4, dtype=np.uint8)[np.arange(1000) % 4])
  state, first, second = model_checks.train_two_calls(config, x, steps=50)
  assert np.all(np.isfinite(first["loss"])) and np.all(np.isfinite(second["loss"]))
  assert np.asarray(second["loss"])[-10:].mean() < np.asarray(first["loss"])[:10].mean()
  start = model_checks.initial_params(config)
  moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(),
                       state["params"], start)
  assert all(m > 0 for m in jax.tree.leaves(moved["encoder"]) + jax.tree.leaves(moved["decoder"]))
  assert not np.allclose(state["params"]["prior"]["pseudo_inputs"],
                         start["prior"]["pseudo_inputs"])


def test_evaluation_of_a_vamp_model_uses_the_monte_carlo_kl():
  """The test KL is the mean over the images of log q(z|x) - log p(z) over 1000 draws
  z ~ q each (no closed form): within 5 standard errors of the same estimate made here
  with other draws; and importance sampling's log p(x) is at least the ELBO."""
  model = built_vamp_model()

  @jax.jit
  def params_images_and_log_ratio():
    params = model.init(jax.random.key(9))
    x_BxD = jax.random.bernoulli(jax.random.key(10), 0.3, (8, DATA))
    q = model.proposal_distribution(params, x_BxD.astype(jnp.float32))
    z = q.sample(jax.random.key(12), 1000)
    return params, x_BxD, q.log_prob(z) - model.log_prior(params, z)

  params, x, log_ratio = params_images_and_log_ratio()
  x, log_ratio = np.asarray(x, np.uint8), np.asarray(log_ratio)  # log_ratio [8, 1000]
  out = evaluate.evaluate(params, jax.random.key(11), x, model=model, binarization="fixed",
                          k=64, batch_size=8)
  stderr = float(np.sqrt(np.mean(np.var(log_ratio, axis=1)) / log_ratio.size))
  assert abs(out["test_kl"] - float(log_ratio.mean())) < 5 * math.sqrt(2) * stderr
  assert -out["test_nll"] >= out["test_elbo"] - 3 * out["test_nll_stderr"]


@pytest.mark.parametrize("settings, message", [
    ({"objective.kl_estimator": "analytic"}, "KL(q(z|x) || p(z)) has no closed form for the "
     "vamp prior with the gaussian proposal: train the ELBO with the Monte Carlo KL"),
    (dict(objective="prior_is"), "the vamp prior is made of the Gaussian encoder's "
     "posteriors; it needs proposal gaussian, got 'prior'"),
    (dict(objective="avb"), "it needs proposal gaussian, got 'implicit'"),
])
def test_a_vamp_prior_the_objective_cannot_train_is_one_clear_error(settings, message):
  start = config_lib.TrainConfig(model=dataclasses.replace(vamp_model(), data_dim=4),
                                 data=config_lib.DataConfig(dataset="4frames"),
                                 objective=config_lib.objective_config("elbo", kl_estimator="mc"))
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
    with_overrides(start, settings)
