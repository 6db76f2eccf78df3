"""Annealed importance sampling and BDMC (vbayes/evaluation/ais.py) against closed forms:
a 10-D linear-Gaussian model, grid quadrature of a trained 2-D model, importance
sampling, and a Gaussian target for the HMC transition. Each test computes the values it
checks in one compiled program (the trained model's training aside) and compares them on
the host, in numpy."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import linear_gaussian, model_checks
from vbayes import config as config_lib, data as data_lib
from vbayes.evaluation import ais, grid
from vbayes.models import build
from vbayes.numerics import logmeanexp
from vbayes.models.networks import mlp


@functools.cache
def _linear10():
  """The linear-Gaussian model with 12 pixels and 10 latent dimensions of both fixtures."""
  return linear_gaussian.make(data_dim=12, latent_dim=10)


@jax.jit
def _perturbed_linear10(seed, shift, widen):
  """_linear10's params with linear_gaussian.perturbed_encoder(shift, widen), 8 images
  drawn from key(seed) and the encoder q0 on them: one program for both fixtures."""
  lg = _linear10()
  params = lg.params(linear_gaussian.perturbed_encoder(lg, shift=shift, widen=widen))
  x = lg.sample(jax.random.key(seed), 8)
  return params, x, build(lg.config).proposal_distribution(params, x)


@pytest.fixture(scope="module")
def linear10():
  """A linear-Gaussian model with 10 latent dimensions, an encoder off the posterior,
  8 images drawn from it, q0 on them and their closed-form log p(x)."""
  lg = _linear10()
  params, x, q0 = _perturbed_linear10(0, 0.5, 0.5)
  return {"lg": lg, "model": build(lg.config), "params": params, "x": x, "q0": q0,
          "log_px": np.asarray(lg.log_marginal(np.asarray(x)))}


def test_the_schedules_run_from_0_to_1_and_rise():
  for schedule in ais.SCHEDULES:
    b = ais.betas(50, schedule)
    assert b[0] == 0 and b[-1] == 1 and np.all(np.diff(b) > 0)
  sigmoid = ais.betas(50, "sigmoid")
  assert np.diff(sigmoid)[0] < 1 / 50 < np.diff(sigmoid)[25]  # small steps at the ends


# The tests of AIS's machinery below adapt step sizes inside the chains (tuning="adaptive":
# one annealing program to compile, where the pilot adds a second); the default pilot
# tuning has tests of its own at the end, and the command line's test uses it.
ADAPTIVE = ais.HMCSettings(tuning="adaptive")


def test_one_step_is_importance_sampling_from_q0_with_the_same_draws(linear10):
  """beta 0 -> 1 in one step, no transition: the log weights are log p(x, z) - log q0(z)
  at q0's draws from the same key."""
  model = linear10["model"]

  @jax.jit
  def ais_and_importance_log_weights(params, x, q0):
    key = jax.random.key(1)
    out = ais.ais_log_likelihood(params, key, x, q0, model=model, chains=32, num_steps=1,
                                 settings=ADAPTIVE)
    z, log_q = q0.sample_and_log_prob(jax.random.split(key)[0], 32)
    return out["log_w"], model.log_weights(params, x, z, q0, log_q_BxK=log_q)

  ais_log_w, log_w = ais_and_importance_log_weights(linear10["params"], linear10["x"],
                                                    linear10["q0"])
  np.testing.assert_allclose(ais_log_w, log_w, rtol=1e-6)


def test_hmc_leaves_a_gaussian_target_invariant():
  """20000 exact draws of N(m, diag s^2) (3-D, scales 0.3 to 2) after 10 HMC transitions of
  step 0.3 (not adapted) keep the target's mean and variance within 5 standard errors,
  while the chains have moved (acceptance below 1)."""
  mean = np.array([1.0, -2.0, 0.5], np.float32)
  sd = np.array([0.3, 1.0, 2.0], np.float32)
  log_density = lambda z: jnp.sum(-0.5 * ((z - mean) / sd) ** 2, axis=-1)
  n = 20000
  evaluate = ais.density(log_density)

  @jax.jit
  def draws_before_and_after():
    """The exact draws [1, n, 3], the chains after the transitions with keys 3..12 and
    each transition's mean acceptance probability [10]."""
    start = mean + sd * jax.random.normal(jax.random.key(2), (1, n, 3))
    step = jnp.full((1, n), 0.3)

    def transition(z, seed):
      z, _, accept = ais.hmc_step(evaluate, jax.random.key(seed), z, evaluate(z), step,
                                  leapfrog_steps=5)
      return z, jnp.mean(accept)

    z, accepts = jax.lax.scan(transition, start, 3 + jnp.arange(10))
    return start, z, accepts

  start, z, accepts = map(np.asarray, draws_before_and_after())
  z = z[0]
  np.testing.assert_array_less(np.abs(z.mean(0) - mean), 5 * sd / math.sqrt(n))
  np.testing.assert_array_less(np.abs(z.var(0) / sd**2 - 1), 5 * math.sqrt(2 / n))
  assert 0.5 < np.mean(accepts) < 0.999
  assert float(np.mean(np.abs(z - start[0]))) > 0.1


def test_ais_converges_to_the_closed_form_and_tightens_with_steps(linear10):
  """10-D linear-Gaussian: AIS's error shrinks from 10 to 300 steps, where the mean over
  8 images is within 0.05 nats of log p(x) (16 chains each)."""
  model = linear10["model"]

  @jax.jit
  def log_px_by_steps(params, x, q0):
    return {steps: ais.ais_log_likelihood(params, jax.random.key(4), x, q0, model=model,
                                          chains=16, num_steps=steps,
                                          settings=ADAPTIVE)["log_px"]
            for steps in (10, 300)}

  log_px = log_px_by_steps(linear10["params"], linear10["x"], linear10["q0"])
  errors = {steps: np.asarray(estimate) - linear10["log_px"]
            for steps, estimate in log_px.items()}
  assert np.mean(np.abs(errors[300])) < 0.5 * np.mean(np.abs(errors[10]))
  assert abs(np.mean(errors[300])) < 0.05
  assert np.all(np.isfinite(errors[300]))


def test_bdmc_brackets_log_p_of_x_and_the_gap_closes(linear10):
  """On data simulated from the model, forward AIS from the encoder (a lower bound)
  and reverse AIS from the true z (an upper bound) bracket the closed form, within 3
  standard errors of their mean over 8 images, and the gap shrinks with steps (to 0
  within 3 standard errors of its mean: the bounds are stochastic and may cross)."""
  model = linear10["model"]

  @jax.jit
  def simulated_and_bounds(params):
    z, x = ais.simulate(params, jax.random.key(5), 8, model=model)
    q0 = model.proposal_distribution(params, x)
    return x, {steps: ais.bdmc(params, jax.random.key(6), x, z, q0, model=model, chains=8,
                               num_steps=steps, settings=ADAPTIVE)
               for steps in (20, 200)}

  x, bounds = jax.tree.map(np.asarray, simulated_and_bounds(linear10["params"]))
  truth = np.asarray(linear10["lg"].log_marginal(x))
  gaps = []
  for steps in (20, 200):
    lower, upper = bounds[steps]["lower"] - truth, bounds[steps]["upper"] - truth
    for bound, sign in ((lower, 1), (upper, -1)):
      assert sign * np.mean(bound) < 3 * np.std(bound, ddof=1) / math.sqrt(8) + 1e-3
    gaps.append((np.mean(upper - lower), np.std(upper - lower, ddof=1) / math.sqrt(8)))
  (gap_20, _), (gap_200, gap_200_se) = gaps
  assert gap_20 > 0 and -3 * gap_200_se < gap_200 < min(0.3 * gap_20, 0.2), gaps


def test_ais_agrees_with_grid_quadrature_on_a_trained_2d_model():
  """A 2-D VAE trained for 500 steps on 4Frames: AIS from the encoder (32 chains, 200
  steps) is within 0.1 nats of 512^2-point quadrature on average over the four images."""
  config = config_lib.TrainConfig(
      model=config_lib.ModelConfig(data_dim=4, latent_dim=2,
                                   network=mlp.Config(hidden_sizes=(32,))),
      data=config_lib.DataConfig(dataset="4frames"), batch_size=20, learning_rate=1e-2)
  state, _, _ = model_checks.train_two_calls(config, data_lib.four_frames(), steps=250)
  model = build(config.model)

  @jax.jit
  def quadrature_and_ais(params, x):
    exact = grid.quadrature_log_likelihood(params, x, model=model, limit=5.0, points=512)
    q0 = model.proposal_distribution(params, x)
    return exact, ais.ais_log_likelihood(params, jax.random.key(7), x, q0, model=model,
                                         chains=32, num_steps=200, settings=ADAPTIVE)["log_px"]

  exact, log_px = map(np.asarray, quadrature_and_ais(state["params"],
                                                     np.eye(4, dtype=np.float32)))
  assert abs(float(np.mean(log_px - exact))) < 0.1


@pytest.fixture(scope="module")
def mild10():
  """linear10's model with an encoder closer to the posterior, so that 20 distributions
  make the AIS weights' spread small (sd of log w about 0.8) and the delta method's
  standard error of log mean w over 1024 chains trustworthy."""
  lg = _linear10()
  params, x, q0 = _perturbed_linear10(20, 0.1, 0.2)
  return {"lg": lg, "model": build(lg.config), "params": params, "x": x, "q0": q0}


def _mean_and_stderr(estimates_B, stderr_B):
  """Mean over images and its standard error from per-image delta-method errors."""
  return float(np.mean(estimates_B)), float(np.sqrt(np.sum(np.square(stderr_B)))
                                            / len(estimates_B))


# The pilot-tuned transitions of the two tests below.
MILD_SETTINGS = ais.HMCSettings(initial_step_size=0.05, leapfrog_steps=5)


def test_frozen_step_sizes_make_ais_unbiased(mild10):
  """E[w] = p(x) exactly when the transitions are fixed in advance: step sizes tuned on a
  pilot run (its own chains) then frozen. 1024 chains x 20 distributions on 8 images of
  the 10-D linear-Gaussian model: log mean w - log p(x), averaged over images, is 0
  within 4 standard errors (plus the delta method's Jensen term, -se^2/2 per image),
  and far tighter than the 20-step estimate's own spread."""
  model, x = mild10["model"], mild10["x"]
  truth = np.asarray(mild10["lg"].log_marginal(np.asarray(x)))

  @jax.jit
  def estimate_and_pilot(params, x, q0):
    key = jax.random.key(21)
    out = ais.ais_log_likelihood(params, key, x, q0, model=model, chains=1024, num_steps=20,
                                 settings=MILD_SETTINGS)
    pilot = ais.frozen_step_sizes(params, jax.random.split(key, 3)[2], x, q0, ais.betas(20),
                                  model=model, settings=MILD_SETTINGS)
    return out, pilot

  out, pilot = jax.tree.map(np.asarray, estimate_and_pilot(mild10["params"], x, mild10["q0"]))
  stderr = out["stderr"]
  error, error_se = _mean_and_stderr(out["log_px"] - truth, stderr)
  assert 0.02 < np.mean(np.std(out["log_w"], axis=1)) < 1.0  # the delta method holds
  assert abs(error + np.mean(stderr**2) / 2) < 4 * error_se, (error, error_se)
  # The step sizes were the pilot's: one per transition and image, shared by the chains.
  np.testing.assert_allclose(out["step_sizes"], pilot, rtol=1e-6)
  assert out["step_sizes"].shape == (19, 8) and np.ptp(pilot) > 0


def test_reverse_ais_from_exact_posterior_draws_estimates_one_over_p_of_x(mild10):
  """Reverse AIS started at exact posterior draws (closed form here, one per chain) with
  the forward pilot's step sizes reversed: E[w] = 1 / p(x), so log mean w + log p(x) is
  0 within 4 standard errors over 8 images (1024 chains x 20 distributions)."""
  model, x, lg = mild10["model"], mild10["x"], mild10["lg"]
  truth = np.asarray(lg.log_marginal(np.asarray(x)))
  mean, var = lg.posterior(np.asarray(x))

  @jax.jit
  def reverse_ais(params, x, q0, posterior_mean_BxL, posterior_sd_L):
    """The pilot's step sizes, those the reverse chains used, and log mean w with its
    delta-method standard error [B] each."""
    steps = ais.frozen_step_sizes(params, jax.random.key(22), x, q0, ais.betas(20),
                                  model=model, settings=MILD_SETTINGS)
    z0 = posterior_mean_BxL[:, None, :] + posterior_sd_L * jax.random.normal(
        jax.random.key(23), (8, 1024, 10))
    log_w, _, _, used = ais.anneal(params, jax.random.key(24), x, z0, q0,
                                   ais.betas(20)[::-1].copy(), model=model,
                                   settings=MILD_SETTINGS, step_sizes_TxB=steps[::-1])
    return steps, used, logmeanexp(log_w, axis=1), ais.weight_stderr(log_w)

  steps, used, log_mean_w, stderr = map(np.asarray, reverse_ais(
      mild10["params"], x, mild10["q0"], mean.astype(np.float32),
      np.sqrt(var).astype(np.float32)))
  np.testing.assert_allclose(used, steps[::-1], rtol=1e-6)
  error, error_se = _mean_and_stderr(log_mean_w + truth, stderr)
  assert abs(error + np.mean(stderr**2) / 2) < 4 * error_se, (error, error_se)


def test_step_size_tunings():
  """fixed: the initial step size at every transition; adaptive: no schedule in advance;
  an unknown tuning is refused."""
  lg = linear_gaussian.make(data_dim=6, latent_dim=3)
  model = build(lg.config)

  @jax.jit
  def model_draws_and_fixed_steps():
    params = lg.params()
    x = lg.sample(jax.random.key(25), 2)
    q0 = model.proposal_distribution(params, x)
    fixed = ais.frozen_step_sizes(params, jax.random.key(0), x, q0, ais.betas(5), model=model,
                                  settings=ais.HMCSettings(tuning="fixed",
                                                           initial_step_size=0.1))
    return params, x, q0, fixed

  params, x, q0, fixed = model_draws_and_fixed_steps()
  np.testing.assert_allclose(fixed, np.full((4, 2), 0.1))
  assert ais.frozen_step_sizes(params, jax.random.key(0), x, q0, ais.betas(5), model=model,
                               settings=ais.HMCSettings(tuning="adaptive")) is None
  with pytest.raises(ValueError, match="unknown step-size tuning"):
    ais.frozen_step_sizes(params, jax.random.key(0), x, q0, ais.betas(5), model=model,
                          settings=ais.HMCSettings(tuning="pilot_run"))
