"""The optimizer every training run uses, and its learning-rate schedule."""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax


def staged_learning_rate(learning_rate: float, stages: tuple[tuple[int, float], ...],
                         steps_per_epoch: int) -> Callable:
  """lr(t) = learning_rate * m_i during stage i, stages ((epochs_i, m_i), ...) in order,
  each epochs_i * steps_per_epoch steps long; the last multiplier holds after them.

  Burda et al. (2016): stages (3^i, 10^(-i/7)) for i = 0..7 with learning_rate 1e-3.
  """
  ends = np.cumsum([epochs * steps_per_epoch for epochs, _ in stages])
  rates = jnp.asarray([learning_rate * m for _, m in stages], jnp.float32)
  ends = jnp.asarray(ends[:-1], jnp.int32)
  return lambda t: rates[jnp.searchsorted(ends, t, side="right")]


# Added to a tensor's gradient norm before dividing by it (normalize_each_tensor).
NORM_EPSILON = 1e-7


def normalize_each_tensor() -> optax.GradientTransformation:
  """g <- g / (||g||_2 + NORM_EPSILON), tensor by tensor (each leaf of the gradient): the
  gradient normalization Tomczak & Welling's code applies before Adam ("AdamNormGrad")."""
  return optax.stateless(lambda updates, params: jax.tree.map(
      lambda g: g / (jnp.sqrt(jnp.sum(g * g)) + NORM_EPSILON), updates))


def adam(learning_rate: float, grad_clip: float = 0.0, *, eps: float = 1e-8,
         stages: tuple[tuple[int, float], ...] = (), steps_per_epoch: int | None = None,
         normalize_gradients: bool = False) -> optax.GradientTransformation:
  """Adam (beta1 0.9, beta2 0.999, `eps`), after clipping the gradient's global norm to
  grad_clip when grad_clip > 0, or after dividing each tensor's gradient by its norm
  with normalize_gradients (`normalize_each_tensor`); at a constant learning rate, or
  `staged_learning_rate` when `stages` are given (then steps_per_epoch is needed)."""
  rate = learning_rate
  if stages:
    if steps_per_epoch is None:
      raise ValueError("a staged learning rate needs steps_per_epoch")
    rate = staged_learning_rate(learning_rate, stages, steps_per_epoch)
  before = []
  if grad_clip > 0:
    before.append(optax.clip_by_global_norm(grad_clip))
  if normalize_gradients:
    before.append(normalize_each_tensor())
  opt = optax.adam(rate, eps=eps)
  return optax.chain(*before, opt) if before else opt
