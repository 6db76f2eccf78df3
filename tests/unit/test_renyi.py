"""The variational Rényi bound: its limits (IWAE at alpha = 0, the k-sample ELBO at
alpha = 1), its order in alpha, its gradient, and training through the registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import linear_gaussian
from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes.training import step as training_step
from vbayes.models import build
from vbayes.objectives import elbo, iwae, renyi
from vbayes.models.networks import mlp

ALPHAS = (-1.0, 0.0, 0.5, 0.9, 0.99, 1.0)


@pytest.fixture(scope="module")
def setup():
  """The linear-Gaussian model (as the lg_model fixture makes it) with a perturbed encoder,
  three images, the noise of 16 samples for each, and the bound at each of ALPHAS on
  them, [alphas, B], in one compiled program."""
  lg_model = linear_gaussian.make()

  @jax.jit
  def draws_and_bounds():
    params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
    x = lg_model.sample(jax.random.key(0), 3)
    eps = jax.random.normal(jax.random.key(1), (3, 16, lg_model.config.latent_dim))
    return params, x, eps, jnp.stack([renyi.renyi_bounds(params, eps, x, model=lg_model.config,
                                                         alpha=alpha) for alpha in ALPHAS])

  params, x, eps, values = draws_and_bounds()
  return lg_model, params, x, eps, np.asarray(values)


def test_alpha_zero_is_iwae_and_alpha_one_is_the_k_sample_elbo(setup):
  lg_model, params, x, eps, values = setup
  one_sample = jax.vmap(jax.vmap(  # the ELBO with the MC KL is log w of one sample
      lambda e, xx: elbo.elbo_from_noise(params, e, xx, model=lg_model.config,
                                         kl_estimator="mc")["elbo"], in_axes=(0, None)))
  iwae_bound, mean_elbo = jax.jit(lambda eps, x: (
      iwae.iwae_bounds(params, eps, x, model=lg_model.config)["bound"],
      one_sample(eps, x).mean(axis=1)))(eps, x)
  np.testing.assert_allclose(values[ALPHAS.index(0.0)], iwae_bound, rtol=1e-6)
  np.testing.assert_allclose(values[ALPHAS.index(1.0)], mean_elbo, rtol=1e-5)


def test_the_bound_does_not_rise_with_alpha_and_is_continuous_at_one(setup):
  """For the same samples L_alpha is a power mean of the weights with exponent
  1 - alpha: non-increasing in alpha. Near alpha = 1 it is the mean of log w plus
  (1 - alpha) Var_k(log w) / 2 to first order (the cumulant expansion of log E e^{t log w})."""
  lg_model, params, x, eps, values = setup  # [alphas, B]
  assert np.all(np.diff(values, axis=0) <= 1e-5)
  assert np.all(values[0] - values[-1] > 1e-3)  # and not flat
  model = build(lg_model.config)

  @jax.jit
  def log_weights(params, x, eps):
    q = model.proposal_distribution(params, x)
    return model.log_weights(params, x, q.draw(eps), q)

  var_B = np.var(np.asarray(log_weights(params, x, eps)), axis=1)
  near = values[ALPHAS.index(0.99)] - values[-1]
  # float32 rounds the log-mean-exp to ~2^-23 log k, which the division by 1 - alpha
  # magnifies; the second-order term is O((1 - alpha)^2).
  rounding = 4 * 2.0**-23 * np.log(eps.shape[1]) / 0.01
  np.testing.assert_allclose(near, 0.01 / 2 * var_B, rtol=0.05, atol=rounding)


def test_the_gradient_weights_each_sample_by_the_tempered_softmax(setup):
  """grad L_alpha = sum_i softmax_i((1 - alpha) log w_i) grad log w_i (Li & Turner, eq. 12)."""
  lg_model, params, x, eps, _ = setup
  alpha = 0.5
  model = build(lg_model.config)

  def log_w(p):
    q = model.proposal_distribution(p, x)
    z = q.draw(eps)
    return model.log_weights(p, x, z, q)

  @jax.jit
  def got_and_want(params):
    weights = jax.lax.stop_gradient(jax.nn.softmax((1 - alpha) * log_w(params), axis=1))
    want = jax.grad(lambda p: jnp.sum(weights * log_w(p)))(params)
    got = jax.grad(lambda p: jnp.sum(renyi.renyi_bounds(p, eps, x, model=lg_model.config,
                                                        alpha=alpha)))(params)
    return got, want

  got, want = got_and_want(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), got, want)


def test_renyi_trains_through_the_registry():
  """TrainConfig(objective=renyi.Config(...)) runs in the training loop unchanged."""
  config = config_lib.TrainConfig(
      model=config_lib.ModelConfig(data_dim=4, latent_dim=2,
                                   network=mlp.Config(hidden_sizes=(16,))),
      data=config_lib.DataConfig(dataset="4frames"), objective=renyi.Config(k=5, alpha=0.5),
      batch_size=20, steps_per_call=50, learning_rate=3e-3)
  assert config_lib.TrainConfig.from_dict(config.to_dict()) == config
  chunk = training_step.make_train_chunk(training_step.make_update(config), batch_size=20,
                                     steps_per_call=50, steps_per_epoch=50, binarization="fixed")
  state, train_key, data_key = jax.jit(lambda: (
      training_step.init_state(jax.random.key(0), config), jax.random.key(1), jax.random.key(2)))()
  images = jax.device_put(data_lib.four_frames())
  losses = []
  for _ in range(6):
    state, metrics = chunk(state, images, train_key, data_key)
    losses.append(float(np.asarray(metrics["loss"]).mean()))
  assert set(metrics) == {"loss", "renyi_bound"}
  assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.1
