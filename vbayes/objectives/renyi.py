r"""The variational Rényi bound (Li & Turner 2016), k samples per image.

    L_alpha(x) = 1 / (1 - alpha) log E_q[ w^{1 - alpha} ],   w = p(x, z) / q(z|x),

estimated from z_1..z_k ~ q(z|x) (reparameterized) as

    L_{alpha,k}(x) = 1 / (1 - alpha) log (1/k) sum_i w_i^{1 - alpha}        (eq. 11),

whose gradient weights each sample's grad log w_i by softmax_i((1 - alpha) log w_i).
alpha = 0 is the IWAE bound L_k; alpha -> 1 the k-sample Monte Carlo ELBO
(1/k) sum_i log w_i, used at alpha = 1 exactly. For the same samples L_{alpha,k} does
not increase with alpha (a power mean of the w_i with exponent 1 - alpha).
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from vbayes.errors import require
from vbayes.models import Model, ModelConfig, as_model
from vbayes.numerics import logmeanexp
from vbayes.objectives import gradient_step
from vbayes.objectives.base import ObjectiveConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(ObjectiveConfig):
  """k: samples per image; alpha: the Rényi order (0: IWAE, 1: ELBO)."""
  name = "renyi"
  proposal = "gaussian"
  needs = frozenset({"density", "reparameterized"})
  k: int = 50
  alpha: float = 0.5

  def __post_init__(self):
    require(self.k > 0, f"k must be positive, got {self.k}")
    require(math.isfinite(self.alpha), f"alpha must be finite, got {self.alpha}")


def renyi_bounds(params, eps_BxKxL, x_BxD, *, model: Model | ModelConfig, alpha: float):
  """L_{alpha,k}(x_b) for each of B images, k = eps_BxKxL.shape[1], z from the noise: [B]."""
  model = as_model(model)
  q = model.proposal_distribution(params, x_BxD)
  z_BxKxL, log_q_BxK = q.draw_and_log_prob(eps_BxKxL)
  log_w_BxK = model.log_weights(params, x_BxD, z_BxKxL, q, log_q_BxK=log_q_BxK)
  if alpha == 1.0:
    return jnp.mean(log_w_BxK, axis=1)
  return logmeanexp((1.0 - alpha) * log_w_BxK, axis=1) / (1.0 - alpha)


def renyi_loss(params, key, x_BxD, *, model: Model | ModelConfig, k: int, alpha: float):
  """-mean_b L_{alpha,k}(x_b); the k samples of all images are one [B, k, L] draw."""
  eps_BxKxL = jax.random.normal(key, (x_BxD.shape[0], k, as_model(model).latent_dim))
  bound = jnp.mean(renyi_bounds(params, eps_BxKxL, x_BxD, model=model, alpha=alpha))
  return -bound, {"renyi_bound": bound}


init_state, make_update = gradient_step.for_loss(
    lambda model, settings: functools.partial(renyi_loss, model=model, k=settings.k,
                                              alpha=settings.alpha))
