"""Prior importance sampling: the decoder trained alone, the prior as proposal.

    L_K(x) = log (1/K) sum_i p(x|z_i),   z_i ~ p(z),

a stochastic lower bound on log p(x) that rises to it with K (the weight
p(x, z) / p(z) is p(x|z)).
"""

import dataclasses
import functools

import jax.numpy as jnp

from vbayes.errors import require
from vbayes.models import Model, ModelConfig, as_model
from vbayes.numerics import logmeanexp
from vbayes.objectives import gradient_step
from vbayes.objectives.base import ObjectiveConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(ObjectiveConfig):
  """k: prior samples per image."""
  name = "prior_is"
  proposal = "prior"
  needs = frozenset({"prior"})
  k: int = 128

  def __post_init__(self):
    require(self.k > 0, f"k must be positive, got {self.k}")


def prior_is_bounds(params, z_BxKxL, x_BxD, *, model: Model | ModelConfig):
  """log (1/K) sum_i p(x_b|z_bi) for each of B images: [B]. With q = p(z) the weight
  p(x, z) / q(z) is p(x | z) exactly, so the prior terms are left out, not cancelled."""
  return logmeanexp(as_model(model).log_likelihood_of_samples(params, z_BxKxL, x_BxD), axis=1)


def prior_is_loss(params, key, x_BxD, *, model: Model | ModelConfig, k: int):
  """-mean_b log (1/K) sum_i p(x_b|z_bi), z_bi ~ p(z): the decoder trained alone."""
  model = as_model(model)
  z_BxKxL = model.prior_distribution(params).sample(key, (x_BxD.shape[0], k))
  bound = jnp.mean(prior_is_bounds(params, z_BxKxL, x_BxD, model=model))
  return -bound, {"prior_is_bound": bound}


init_state, make_update = gradient_step.for_loss(
    lambda model, settings: functools.partial(prior_is_loss, model=model, k=settings.k))
