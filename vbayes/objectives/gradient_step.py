"""The update of every objective that is one loss minimized by Adam (all but AVB)."""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from vbayes import optimizers
from vbayes.models import Model


def optimizer(config) -> optax.GradientTransformation:
  """`optimizers.adam` at the run's learning rate and gradient clipping."""
  return optimizers.adam(config.learning_rate, config.grad_clip)


def init_state(key: jax.Array, model: Model, config) -> dict:
  """The model's parameters, the optimizer's state, step 0."""
  params = model.init(key)
  return {"params": params, "opt_state": optimizer(config).init(params),
          "step": jnp.zeros((), jnp.int32)}


def make_update(loss: Callable, config):
  """update(params, opt_state, step, key, x_BxD): one Adam step on
  loss(params, key, x_BxD) -> (scalar, metrics); metrics gain "loss"."""
  opt = optimizer(config)

  def update(params, opt_state, step, key, x_BxD):
    del step
    (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params, key, x_BxD)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {"loss": value, **metrics}

  return update


def for_loss(make_loss: Callable):
  """(init_state, make_update) of an objective that minimizes one loss:
  make_loss(model, settings) -> loss(params, key, x_BxD) -> (scalar, metrics), with
  settings the objective's Config."""

  def make(model: Model, config):
    return make_update(make_loss(model, config.objective), config)

  return init_state, make
