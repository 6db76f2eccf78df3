"""The evidence lower bound (Kingma & Welling 2014), one sample per image.

    ELBO(x) = E_{q(z|x)}[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x)

The per-image bound is written for one image as a function of its noise and
vmapped over the batch; the batch's noise is one draw from `key`.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from vbayes import distributions
from vbayes.errors import require
from vbayes.models import Model, ModelConfig, as_model
from vbayes.objectives import gradient_step
from vbayes.objectives.base import ObjectiveConfig

KL_ESTIMATORS = ("analytic", "mc")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(ObjectiveConfig):
  """kl_estimator: "analytic" (closed form, where the prior and q have one) or "mc"
  (log q(z|x) - log p(z) at the sampled z). kl_warmup_steps: the KL term's weight rises
  linearly from 1/W to 1 over the first W steps (0: the ELBO from the start); the
  reported elbo is always the bound itself."""
  name = "elbo"
  proposal = "gaussian"
  needs = frozenset({"density", "reparameterized"})
  kl_estimator: str = "analytic"
  kl_warmup_steps: int = 0

  def __post_init__(self):
    require(self.kl_estimator in KL_ESTIMATORS,
            f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}")
    require(self.kl_warmup_steps >= 0,
            f"kl_warmup_steps must be >= 0, got {self.kl_warmup_steps}")

  def check_model(self, model: ModelConfig):
    require(self.kl_estimator != "analytic" or model.closed_form_kl,
            f"KL(q(z|x) || p(z)) has no closed form for {model.without_closed_form_kl}: "
            "train the ELBO with the Monte Carlo KL, kl_estimator mc (--kl_estimator=mc)")


def elbo_from_noise(params, eps_L, x_D, *, model: Model | ModelConfig,
                    kl_estimator: str = "analytic"):
  """One-sample ELBO of one image (Kingma & Welling 2014, eq. 7 and 10).

      ELBO(x) = E_{q(z|x)}[log p(x|z)] - KL(q(z|x) || p(z)),  z = mu(x) + sigma(x) * eps.

  kl_estimator "analytic" uses the closed-form Gaussian KL; "mc" the one-sample
  estimate log q(z|x) - log p(z) at the same z (the only one for a prior or q
without a closed-form KL).
  Returns {"elbo", "log_likelihood", "kl"}, each a scalar.
  """
  model = as_model(model)
  q = model.proposal_distribution(params, x_D)
  z_L, log_q = q.draw_and_log_prob(eps_L)
  log_lik = model.log_likelihood(params, z_L, x_D)
  if kl_estimator == "analytic":
    kl = distributions.kl_divergence(q, model.prior_distribution(params))
  elif kl_estimator == "mc":
    kl = log_q - model.log_prior(params, z_L)
  else:
    raise ValueError(f"unknown kl_estimator {kl_estimator!r}")
  return {"elbo": log_lik - kl, "log_likelihood": log_lik, "kl": kl}


def elbo(params, key, x_D, *, model: Model | ModelConfig, kl_estimator: str = "analytic"):
  """`elbo_from_noise` with eps ~ N(0, I) drawn from `key`."""
  eps_L = jax.random.normal(key, (as_model(model).latent_dim,))
  return elbo_from_noise(params, eps_L, x_D, model=model, kl_estimator=kl_estimator)


def elbo_loss(params, key, x_BxD, step=0, *, model: Model | ModelConfig,
              kl_estimator: str = "analytic", kl_warmup_steps: int = 0):
  """-mean_b [E_q log p(x_b|z) - beta_t KL_b], with independent noise per image: the
  negative ELBO, or during a KL warm-up of kl_warmup_steps steps its weighted form with
  beta_t = gradient_step.warmup_weight(step, kl_warmup_steps).

  The batch's noise is one [B, L] draw from `key` (one RNG call, cheaper than B
  keys); the per-image ELBO is vmapped over it.
  """
  eps_BxL = jax.random.normal(key, (x_BxD.shape[0], as_model(model).latent_dim))
  per_example = jax.vmap(
      functools.partial(elbo_from_noise, model=model, kl_estimator=kl_estimator),
      in_axes=(None, 0, 0))(params, eps_BxL, x_BxD)
  metrics = {name: jnp.mean(value) for name, value in per_example.items()}
  beta = gradient_step.warmup_weight(step, kl_warmup_steps)
  return beta * metrics["kl"] - metrics["log_likelihood"], metrics


init_state, make_update = gradient_step.for_loss(
    lambda model, settings: functools.partial(elbo_loss, model=model,
                                              kl_estimator=settings.kl_estimator,
                                              kl_warmup_steps=settings.kl_warmup_steps),
    takes_step=True)
