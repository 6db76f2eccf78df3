"""Networks as pure functions over plain parameter dicts.

    net = mlp(hidden_sizes=(500, 500), activation="relu")
    params = net.init(key, in_dim, out_dim)   # {"layer_0": {"w", "b"}, ...}
    out_xO = net.apply(params, x_xI)          # any leading axes

A `Net` is the pair (init, apply); parts of a model take one and never look
inside it, so a convolutional net fits wherever an MLP does.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

Params = dict

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
}


class Net(NamedTuple):
  """init(key, in_dim, out_dim) -> params;  apply(params, x [..., in_dim]) -> [..., out_dim]."""
  init: Callable[[jax.Array, int, int], Params]
  apply: Callable[[Params, jax.Array], jax.Array]


def dense_init(key: jax.Array, fan_in: int, fan_out: int) -> Params:
  """LeCun-normal weights w ~ N(0, 1 / fan_in) (truncated at 2 sd), zero bias."""
  w = jax.nn.initializers.lecun_normal()(key, (fan_in, fan_out), jnp.float32)
  return {"w": w, "b": jnp.zeros((fan_out,), jnp.float32)}


def mlp_init(key: jax.Array, sizes: tuple[int, ...]) -> Params:
  """Layers sizes[0] -> sizes[1] -> ... ; named layer_0, layer_1, ... (last is the output)."""
  keys = jax.random.split(key, len(sizes) - 1)
  return {f"layer_{i}": dense_init(k, n_in, n_out)
          for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:]))}


def mlp_apply(params: Params, x: jax.Array, activation: str) -> jax.Array:
  """h_{i+1} = act(h_i W_i + b_i) for hidden layers; the last layer is linear."""
  act = ACTIVATIONS[activation]
  n = len(params)
  for i in range(n):
    layer = params[f"layer_{i}"]
    x = x @ layer["w"] + layer["b"]
    if i < n - 1:
      x = act(x)
  return x


def mlp(hidden_sizes: tuple[int, ...], activation: str) -> Net:
  """A fully connected net in -> hidden_sizes -> out, `activation` between layers."""
  hidden = tuple(hidden_sizes)
  return Net(init=lambda key, n_in, n_out: mlp_init(key, (n_in, *hidden, n_out)),
             apply=lambda params, x: mlp_apply(params, x, activation))
