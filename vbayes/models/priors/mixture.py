r"""A mixture of diagonal Gaussians with learned means, scales and weights:

    p(z) = sum_c pi_c N(z; m_c, diag exp(v_c)),   pi = softmax(a),   c = 1..C,
    log p(z) = logsumexp_c [ log pi_c - 1/2 sum_l ((z_l - m_cl)^2 / exp(v_cl) + v_cl + log 2 pi) ],

its parameters params["prior"] = {"logits": a [C], "means": m [C, L], "log_vars": v [C, L]}
trained with the rest of the model. Each component's difference z - m_c is kept (an
[..., C, L] array, no expanded squares, so no cancellation at small scales); C * L
should stay below the image's pixel count, which bounds the decoder's memory already.
Draws pick c ~ pi, then z ~ N(m_c, diag exp(v_c)): not reparameterized through the
choice. No closed-form KL(q || p): train it with a sampled KL or a sample-based bound.
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vbayes.errors import require
from vbayes.models.interfaces import Prior
from vbayes.numerics import LOG_2PI
from vbayes.parts import PriorConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(PriorConfig):
  """num_components C; the means start at component_init_sd * eps, eps ~ N(0, I), the
  scales at 1 and the weights equal."""
  name = "mixture"
  num_components: int = 10
  component_init_sd: float = 1.0

  def __post_init__(self):
    require(self.num_components > 0,
            f"num_components must be positive, got {self.num_components}")
    require(self.component_init_sd > 0 and math.isfinite(self.component_init_sd),
            f"component_init_sd must be positive and finite (equal components get equal "
            f"gradients and never separate), got {self.component_init_sd}")

  def build(self, model, proposal) -> Prior:
    del proposal
    return prior(model.latent_dim, self.num_components, self.component_init_sd)


class GaussianMixture(NamedTuple):
  """sum_c softmax(logits)_c N(mean_c, diag exp(log_var_c)); logits [C], mean, log_var [C, L]."""
  logits: jax.Array
  mean: jax.Array
  log_var: jax.Array

  def log_prob(self, z_xL: jax.Array) -> jax.Array:
    """log p(z) for z [..., L]: [...]."""
    diff_xCxL = z_xL[..., None, :] - self.mean
    log_n_xC = -0.5 * jnp.sum(diff_xCxL**2 * jnp.exp(-self.log_var) + self.log_var + LOG_2PI,
                              axis=-1)
    return jax.nn.logsumexp(jax.nn.log_softmax(self.logits) + log_n_xC, axis=-1)

  def sample(self, key: jax.Array, shape=()) -> jax.Array:
    """z [*shape, L]."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    pick_key, noise_key = jax.random.split(key)
    c = jax.random.categorical(pick_key, self.logits, shape=shape)
    eps = jax.random.normal(noise_key, (*shape, self.mean.shape[-1]), self.mean.dtype)
    return self.mean[c] + jnp.exp(0.5 * self.log_var[c]) * eps

  def sample_and_log_prob(self, key: jax.Array, shape=()):
    z = self.sample(key, shape)
    return z, self.log_prob(z)


def prior(latent_dim: int, num_components: int, component_init_sd: float) -> Prior:
  """The mixture prior of `num_components` learned components in `latent_dim` dimensions."""

  def init(key):
    means = component_init_sd * jax.random.normal(key, (num_components, latent_dim))
    return {"logits": jnp.zeros((num_components,), jnp.float32), "means": means,
            "log_vars": jnp.zeros((num_components, latent_dim), jnp.float32)}

  def distribution(params):
    p = params["prior"]
    return GaussianMixture(p["logits"], p["means"], p["log_vars"])

  return Prior(init=init, distribution=distribution)
