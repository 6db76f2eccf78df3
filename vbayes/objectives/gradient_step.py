"""The update of every objective that is one loss minimized by Adam (all but AVB)."""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from vbayes import optimizers
from vbayes.models import Model


def optimizer(config, steps_per_epoch: int | None = None) -> optax.GradientTransformation:
  """`optimizers.adam` with the run's learning rate (and its stages, which need
  steps_per_epoch), Adam epsilon, gradient clipping and normalization."""
  return optimizers.adam(config.learning_rate, config.grad_clip, eps=config.adam_eps,
                         stages=config.learning_rate_stages, steps_per_epoch=steps_per_epoch,
                         normalize_gradients=config.normalize_gradients)


def init_state(key: jax.Array, model: Model, config) -> dict:
  """The model's parameters, the optimizer's state, step 0."""
  params = model.init(key)
  opt = optimizer(config, steps_per_epoch=1)  # the state does not depend on the stages' length
  return {"params": params, "opt_state": opt.init(params), "step": jnp.zeros((), jnp.int32)}


def warmup_weight(step, warmup_steps: int) -> jax.Array:
  """beta_t = min(1, (t + 1) / warmup_steps), 1 without warm-up (warmup_steps 0): the
  weight of a KL term that rises linearly over the first steps (Bowman et al. 2016;
  Sonderby et al. 2016)."""
  if warmup_steps <= 0:
    return jnp.float32(1.0)
  return jnp.minimum(1.0, (step + 1.0) / warmup_steps)


def make_update(loss: Callable, config, steps_per_epoch: int | None = None):
  """update(params, opt_state, step, key, x_BxD): one Adam step on
  loss(params, key, x_BxD, step) -> (scalar, metrics); metrics gain "loss"."""
  opt = optimizer(config, steps_per_epoch)

  def update(params, opt_state, step, key, x_BxD):
    (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params, key, x_BxD, step)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {"loss": value, **metrics}

  return update


def for_loss(make_loss: Callable, takes_step: bool = False):
  """(init_state, make_update) of an objective that minimizes one loss:
  make_loss(model, settings) -> loss(params, key, x_BxD, step) -> (scalar, metrics),
  with settings the objective's Config and step the update's number; a loss that does
  not depend on the step is loss(params, key, x_BxD) (takes_step False)."""

  def make(model: Model, config, steps_per_epoch: int | None = None):
    loss = make_loss(model, config.objective)
    if not takes_step:
      loss = (lambda f: lambda params, key, x_BxD, step: f(params, key, x_BxD))(loss)
    return make_update(loss, config, steps_per_epoch)

  return init_state, make
