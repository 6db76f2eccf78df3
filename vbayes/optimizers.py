"""The optimizer every training run uses, and its learning-rate schedule."""

from typing import Callable

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


def adam(learning_rate: float, grad_clip: float = 0.0, *, eps: float = 1e-8,
         stages: tuple[tuple[int, float], ...] = (), steps_per_epoch: int | None = None
         ) -> optax.GradientTransformation:
  """Adam (beta1 0.9, beta2 0.999, `eps`), after clipping the gradient's global norm to
  grad_clip when grad_clip > 0; at a constant learning rate, or `staged_learning_rate`
  when `stages` are given (then steps_per_epoch is needed)."""
  rate = learning_rate
  if stages:
    if steps_per_epoch is None:
      raise ValueError("a staged learning rate needs steps_per_epoch")
    rate = staged_learning_rate(learning_rate, stages, steps_per_epoch)
  opt = optax.adam(rate, eps=eps)
  if grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(grad_clip), opt)
  return opt
