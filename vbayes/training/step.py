"""The jitted training update: many steps per call, state donated, data on device.

    state = init_state(key, config)
    chunk = make_train_chunk(make_update(config), ...)
    state, metrics_S = chunk(state, train_images_NxD, train_key, data_key)

An update is update(params, opt_state, step, key, x_BxD) -> (params, opt_state,
metrics), made by the objective's module (vbayes/objectives/): one Adam step on a
loss, or AVB's adversary-then-model step. This module knows no objective by name.

One call runs `steps_per_call` optimizer steps in a `lax.scan`. Step t uses the
key fold_in(train_key, t); epoch e visits the training set in the order
permutation(fold_in(data_key, e)). Everything depends on the step number alone,
so a run resumed from a checkpoint takes exactly the steps it would have taken.

With a mesh of several devices the batch is sharded over its "data" axis and
parameters are replicated; XLA inserts the gradient all-reduce. On one device
it is the plain path.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from vbayes import data as data_lib
from vbayes import objectives, precision
from vbayes.config import TrainConfig
from vbayes.models import Model, build

TrainState = dict  # {"params": pytree, "opt_state": pytree, "step": int32 scalar}


def make_update(config: TrainConfig, model: Model | None = None,
                steps_per_epoch: int | None = None):
  """The training update of config.objective (its module's make_update), for `model`
  (default: the model config.model describes); steps_per_epoch sets the length of
  config.learning_rate_stages' epochs (needed only with stages). Its matrix products
  are traced at config.matmul_precision (vbayes.precision)."""
  model = build(config.model) if model is None else model
  update = objectives.get(config.objective.name).make_update(model, config,
                                                             steps_per_epoch=steps_per_epoch)
  return precision.traced_at(update, config.matmul_precision)


def init_state(key: jax.Array, config: TrainConfig, model: Model | None = None) -> TrainState:
  """Parameters, optimizer state and step 0 for config.objective (its module's init_state)."""
  model = build(config.model) if model is None else model
  return objectives.get(config.objective.name).init_state(key, model, config)


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh over all (or the given) devices, axis "data"."""
  devices = jax.devices() if devices is None else devices
  return jax.sharding.Mesh(devices, ("data",))


def replicate(tree, mesh: jax.sharding.Mesh | None):
  """Places every array of `tree` whole on each device of the mesh (parameters, keys,
  datasets). A mesh over several processes' devices takes each leaf's value on this
  process (every process must hold the same) as its local copies."""
  if mesh is None:
    return jax.device_put(tree)
  sharding = NamedSharding(mesh, P())
  if mesh.is_multi_process:
    return jax.tree.map(lambda leaf: _global_copy(leaf, sharding), tree)
  return jax.device_put(tree, sharding)


def _global_copy(leaf, sharding: NamedSharding):
  if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
    return jax.random.wrap_key_data(_global_copy(jax.random.key_data(leaf), sharding),
                                    impl=jax.random.key_impl(leaf))
  value = np.asarray(leaf)
  return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def check_batch_divides(batch_size: int, mesh: jax.sharding.Mesh | None):
  if mesh is not None and batch_size % mesh.size:
    raise ValueError(f"batch_size {batch_size} must be divisible by the number of devices "
                     f"{mesh.size} for data-parallel training")


def make_train_chunk(update: Callable, *, batch_size: int, steps_per_call: int, steps_per_epoch: int,
                     binarization: str, mesh: jax.sharding.Mesh | None = None):
  """Returns jit(train_chunk) with the state donated.

  train_chunk(state, images_NxD uint8, train_key, data_key) -> (state, metrics)
  where metrics maps each name to its [steps_per_call] values. A call must not
  cross an epoch boundary: steps_per_call divides steps_per_epoch, and calls
  start at multiples of steps_per_call.
  """
  if steps_per_epoch % steps_per_call:
    raise ValueError(f"steps_per_call {steps_per_call} must divide steps_per_epoch "
                     f"{steps_per_epoch}")
  check_batch_divides(batch_size, mesh)
  sharded = mesh is not None and mesh.size > 1
  batch_sharding = NamedSharding(mesh, P("data")) if sharded else None

  def train_chunk(state: TrainState, images_NxD, train_key, data_key):
    step0 = state["step"]
    epoch = step0 // steps_per_epoch
    order_N = jax.random.permutation(jax.random.fold_in(data_key, epoch), images_NxD.shape[0])
    offset = (step0 % steps_per_epoch) * batch_size

    def one_step(carry, i):
      params, opt_state = carry
      index_B = jax.lax.dynamic_slice_in_dim(order_N, offset + i * batch_size, batch_size)
      x_BxD = images_NxD[index_B]
      if sharded:
        x_BxD = jax.lax.with_sharding_constraint(x_BxD, batch_sharding)
      binarize_key, loss_key = jax.random.split(jax.random.fold_in(train_key, step0 + i))
      x_BxD = data_lib.to_float(binarize_key, x_BxD, binarization)
      params, opt_state, metrics = update(params, opt_state, step0 + i, loss_key, x_BxD)
      return (params, opt_state), metrics

    (params, opt_state), metrics = jax.lax.scan(
        one_step, (state["params"], state["opt_state"]), jnp.arange(steps_per_call))
    return {"params": params, "opt_state": opt_state, "step": step0 + steps_per_call}, metrics

  return jax.jit(train_chunk, donate_argnums=0)


@jax.jit
def all_finite(tree) -> jax.Array:
  """True iff every floating-point entry of `tree` is finite: one reduction on the device."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)
