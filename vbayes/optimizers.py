"""The optimizer every training run uses."""

import optax


def adam(learning_rate: float, grad_clip: float = 0.0) -> optax.GradientTransformation:
  """Adam, after clipping the gradient's global norm to grad_clip when grad_clip > 0."""
  if grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(grad_clip), optax.adam(learning_rate))
  return optax.adam(learning_rate)
