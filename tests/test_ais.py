"""Annealed importance sampling and BDMC (vbayes/evaluation/ais.py) against closed forms:
a 10-D linear-Gaussian model, grid quadrature of a trained 2-D model, importance
sampling, and a Gaussian target for the HMC transition."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import linear_gaussian, model_checks
from vbayes import config as config_lib, data as data_lib
from vbayes.evaluation import ais, grid
from vbayes.models import build


@pytest.fixture(scope="module")
def linear10():
  """A linear-Gaussian model with 10 latent dimensions, an encoder off the posterior,
  8 images drawn from it and their closed-form log p(x)."""
  lg = linear_gaussian.make(data_dim=12, latent_dim=10)
  model = build(lg.config)
  params = lg.params(linear_gaussian.perturbed_encoder(lg, shift=0.5, widen=0.5))
  x = lg.sample(jax.random.key(0), 8)
  return {"lg": lg, "model": model, "params": params, "x": x,
          "log_px": np.asarray(lg.log_marginal(np.asarray(x)))}


def test_the_schedules_run_from_0_to_1_and_rise():
  for schedule in ais.SCHEDULES:
    b = ais.betas(50, schedule)
    assert b[0] == 0 and b[-1] == 1 and np.all(np.diff(b) > 0)
  sigmoid = ais.betas(50, "sigmoid")
  assert np.diff(sigmoid)[0] < 1 / 50 < np.diff(sigmoid)[25]  # small steps at the ends


def test_one_step_is_importance_sampling_from_q0_with_the_same_draws(linear10):
  """beta 0 -> 1 in one step, no transition: the log weights are log p(x, z) - log q0(z)
  at q0's draws from the same key."""
  model, params, x = linear10["model"], linear10["params"], linear10["x"]
  q0 = model.proposal_distribution(params, x)
  out = ais.ais_log_likelihood(params, jax.random.key(1), x, q0, model=model, chains=32,
                               num_steps=1)
  z, log_q = q0.sample_and_log_prob(jax.random.split(jax.random.key(1))[0], 32)
  np.testing.assert_allclose(out["log_w"], model.log_weights(params, x, z, q0, log_q_BxK=log_q),
                             rtol=1e-6)


def test_hmc_leaves_a_gaussian_target_invariant():
  """20000 exact draws of N(m, diag s^2) (3-D, scales 0.3 to 2) after 10 HMC transitions of
  step 0.3 (not adapted) keep the target's mean and variance within 5 standard errors,
  while the chains have moved (acceptance below 1)."""
  mean, sd = jnp.array([1.0, -2.0, 0.5]), jnp.array([0.3, 1.0, 2.0])
  log_density = lambda z: jnp.sum(-0.5 * ((z - mean) / sd) ** 2, axis=-1)
  n = 20000
  z = mean + sd * jax.random.normal(jax.random.key(2), (1, n, 3))
  start = z
  settings = ais.HMCSettings(leapfrog_steps=5, initial_step_size=0.3, adapt=False)
  step = jnp.full((1, n), 0.3)
  evaluate = ais.density(log_density)
  transition = jax.jit(lambda key, z: ais.hmc_step(evaluate, key, z, evaluate(z), step,
                                                   settings))
  accepts = []
  for i in range(10):
    z, _, _, accept = transition(jax.random.key(3 + i), z)
    accepts.append(float(accept.mean()))
  z = np.asarray(z[0])
  np.testing.assert_array_less(np.abs(z.mean(0) - mean), 5 * sd / math.sqrt(n))
  np.testing.assert_array_less(np.abs(z.var(0) / sd**2 - 1), 5 * math.sqrt(2 / n))
  assert 0.5 < np.mean(accepts) < 0.999
  assert float(jnp.mean(jnp.abs(z - start[0]))) > 0.1


def test_ais_converges_to_the_closed_form_and_tightens_with_steps(linear10):
  """10-D linear-Gaussian: AIS's error shrinks from 10 to 300 steps, where the mean over
  8 images is within 0.05 nats of log p(x) (16 chains each)."""
  model, params, x = linear10["model"], linear10["params"], linear10["x"]
  q0 = model.proposal_distribution(params, x)
  errors = {}
  for steps in (10, 300):
    out = ais.ais_log_likelihood(params, jax.random.key(4), x, q0, model=model, chains=16,
                                 num_steps=steps)
    errors[steps] = np.asarray(out["log_px"]) - linear10["log_px"]
  assert np.mean(np.abs(errors[300])) < 0.5 * np.mean(np.abs(errors[10]))
  assert abs(np.mean(errors[300])) < 0.05
  assert np.all(np.isfinite(errors[300]))


def test_bdmc_brackets_log_p_of_x_and_the_gap_closes(linear10):
  """On data simulated from the model, forward AIS from the encoder (a lower bound)
  and reverse AIS from the true z (an upper bound) bracket the closed form, within 3
  standard errors of their mean over 8 images, and the gap shrinks with steps."""
  model, params = linear10["model"], linear10["params"]
  z, x = ais.simulate(params, jax.random.key(5), 8, model=model)
  truth = np.asarray(linear10["lg"].log_marginal(np.asarray(x)))
  q0 = model.proposal_distribution(params, x)
  gaps = []
  for steps in (20, 200):
    out = ais.bdmc(params, jax.random.key(6), x, z, q0, model=model, chains=8,
                   num_steps=steps)
    lower, upper = np.asarray(out["lower"]) - truth, np.asarray(out["upper"]) - truth
    for bound, sign in ((lower, 1), (upper, -1)):
      assert sign * np.mean(bound) < 3 * np.std(bound, ddof=1) / math.sqrt(8) + 1e-3
    gaps.append(np.mean(upper - lower))
  assert 0 < gaps[1] < 0.3 * gaps[0] and gaps[1] < 0.2


def test_ais_agrees_with_grid_quadrature_on_a_trained_2d_model():
  """A 2-D VAE trained for 500 steps on 4Frames: AIS from the encoder (32 chains, 200
  steps) is within 0.1 nats of 512^2-point quadrature on average over the four images."""
  config = config_lib.TrainConfig(
      model=config_lib.ModelConfig(data_dim=4, latent_dim=2, hidden_sizes=(32,)),
      data=config_lib.DataConfig(dataset="4frames"), batch_size=20, learning_rate=1e-2)
  images = jnp.asarray(data_lib.four_frames())
  state, _, _ = model_checks.train_two_calls(config, images, steps=250)
  params, model = state["params"], build(config.model)
  x = jnp.asarray(np.eye(4, dtype=np.float32))
  exact = np.asarray(grid.quadrature_log_likelihood(params, x, model=model, limit=5.0,
                                                    points=512))
  q0 = model.proposal_distribution(params, x)
  out = ais.ais_log_likelihood(params, jax.random.key(7), x, q0, model=model, chains=32,
                               num_steps=200)
  assert abs(float(np.mean(np.asarray(out["log_px"]) - exact))) < 0.1
