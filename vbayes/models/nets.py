"""Networks as pure functions over plain parameter dicts.

    net = mlp(hidden_sizes=(500, 500), activation="relu")
    params = net.init(key, in_dim, out_dim)   # {"layer_0": {"w", "b"}, ...}
    out_xO = net.apply(params, x_xI)          # any leading axes

A `Net` is the pair (init, apply); parts of a model take one and never look
inside it, so a convolutional net fits wherever an MLP does. `gated_mlp` is the
gated dense net of Tomczak & Welling (2018).
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


def he_dense_init(key: jax.Array, fan_in: int, fan_out: int) -> Params:
  """He-normal weights w ~ N(0, 2 / fan_in) (not truncated), zero bias."""
  w = jnp.sqrt(2.0 / fan_in) * jax.random.normal(key, (fan_in, fan_out), jnp.float32)
  return {"w": w, "b": jnp.zeros((fan_out,), jnp.float32)}


def gated_mlp_init(key: jax.Array, sizes: tuple[int, ...]) -> Params:
  """Gated layers sizes[0] -> ... -> sizes[-2], then a dense output layer to sizes[-1].

  A gated layer of H units holds both its linear map and its gate in one [n, 2H]
  weight (columns :H the linear part, H: the gate), so it is one matrix product.
  Every weight is He-normal (Tomczak & Welling's initialization), every bias zero.
  """
  keys = jax.random.split(key, len(sizes) - 1)
  params = {}
  for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
    last = i == len(sizes) - 2
    linear_key, gate_key = jax.random.split(k)
    if last:
      params[f"layer_{i}"] = he_dense_init(linear_key, n_in, n_out)
    else:
      linear, gate = he_dense_init(linear_key, n_in, n_out), he_dense_init(gate_key, n_in, n_out)
      params[f"layer_{i}"] = {"w": jnp.concatenate([linear["w"], gate["w"]], axis=1),
                              "b": jnp.concatenate([linear["b"], gate["b"]])}
  return params


def gated_mlp_apply(params: Params, x: jax.Array) -> jax.Array:
  """h_{i+1} = (h_i A_i + a_i) * sigmoid(h_i G_i + g_i) for hidden layers, where
  [A_i, G_i] = W_i and [a_i, g_i] = b_i; the last layer is linear."""
  n = len(params)
  for i in range(n):
    layer = params[f"layer_{i}"]
    x = x @ layer["w"] + layer["b"]
    if i < n - 1:
      linear, gate = jnp.split(x, 2, axis=-1)
      x = linear * jax.nn.sigmoid(gate)
  return x


def gated_mlp(hidden_sizes: tuple[int, ...]) -> Net:
  """The gated dense net of Tomczak & Welling (2018): in -> hidden_sizes -> out, each
  hidden layer h = (W1 x + b1) * sigmoid(W2 x + b2) with no other nonlinearity (the
  gate is its nonlinearity), then a linear output layer."""
  hidden = tuple(hidden_sizes)
  return Net(init=lambda key, n_in, n_out: gated_mlp_init(key, (n_in, *hidden, n_out)),
             apply=gated_mlp_apply)
