"""Checks every model part must pass, shared by the tests of each part."""

import jax
import numpy as np

from vbayes import config as config_lib
from vbayes import objectives
from vbayes.objectives import elbo, gradient_step, iwae
from vbayes.training import step as training_step


# Every objective that trains a Gaussian-family encoder, with small k: the matrix each
# model part is tested against.
ENCODER_OBJECTIVES = [
    config_lib.objective_config("elbo", kl_estimator="mc"),
    config_lib.objective_config("iwae", k=4, estimator="reparam"),
    config_lib.objective_config("iwae", k=4, estimator="stl"),
    config_lib.objective_config("iwae", k=4, estimator="dreg"),
    config_lib.objective_config("renyi", k=4, alpha=0.5)]


def objective_id(objective) -> str:
  return "-".join(str(v) for v in objective.to_dict().values())


def assert_iwae_with_one_sample_is_the_monte_carlo_elbo(model, params, x_BxD, eps_BxL,
                                                        rtol: float = 1e-5):
  """L_1 from noise eps equals the one-sample ELBO at the same z, and both equal
  log p(x, z) - log q(z|x) written out here: the joint at z = draw(eps) and q's density
  at z by `log_prob` (not the log-density the draw carries, which both estimators use)."""
  def written_out(e, x):
    q = model.proposal_distribution(params, x)
    z = q.draw(e)
    return model.log_joint(params, x, z) - q.log_prob(z)

  @jax.jit
  def three_ways(eps_BxL, x_BxD):
    l1 = jax.vmap(lambda e, x: iwae.iwae_from_noise(params, e[None], x, model=model)["bound"])
    one = jax.vmap(lambda e, x: elbo.elbo_from_noise(params, e, x, model=model,
                                                     kl_estimator="mc")["elbo"])
    return l1(eps_BxL, x_BxD), one(eps_BxL, x_BxD), jax.vmap(written_out)(eps_BxL, x_BxD)

  l1, one, by_definition = three_ways(eps_BxL, x_BxD)
  np.testing.assert_allclose(l1, one, rtol=rtol)
  np.testing.assert_allclose(one, by_definition, rtol=rtol, atol=1e-4)


# One compiled program per config (the same initial state for both functions below).
_init_state_program = jax.jit(training_step.init_state, static_argnames="config")
_FIRST_CONFIG = {}  # the optimizer and model settings: the first config seen with them


def _init_state(key, config):
  """training_step.init_state(key, config). The objectives trained by one gradient step
  share gradient_step.init_state, which reads the model and the optimizer's settings
  (gradient_step.optimizer) but not the objective: their configs that agree on those
  share one compiled program."""
  if objectives.get(config.objective.name).init_state is gradient_step.init_state:
    settings = (config.model, config.learning_rate, config.grad_clip, config.adam_eps,
                config.learning_rate_stages, config.normalize_gradients)
    config = _FIRST_CONFIG.setdefault(settings, config)
  return _init_state_program(key, config=config)


def train_two_calls(config, images_NxD, steps: int):
  """Two jitted calls of `steps` steps of config's objective on images (uint8, used as
  they are), one epoch each. Returns (state, first call's metrics, second's), after
  checking that the update was traced once."""
  traces = []
  update = training_step.make_update(config)
  counted = lambda *args: (traces.append(1), update(*args))[1]
  chunk = training_step.make_train_chunk(counted, batch_size=config.batch_size,
                                         steps_per_call=steps, steps_per_epoch=steps,
                                         binarization="fixed")
  state = _init_state(jax.random.key(0), config)
  state, first = chunk(state, images_NxD, jax.random.key(1), jax.random.key(2))
  state, second = chunk(state, images_NxD, jax.random.key(1), jax.random.key(2))
  assert len(traces) == 1, f"traced {len(traces)} times"
  return state, first, second


def initial_params(config):
  """The parameters `train_two_calls` starts from."""
  return _init_state(jax.random.key(0), config)["params"]
