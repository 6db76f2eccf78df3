"""The importance-weighted bound (IWAE, Burda et al. 2016), over a batch of images
with k samples each, the encoder as proposal:
    L_k(x) = log (1/k) sum_i w_i,   w_i = p(x, z_i) / q(z_i|x),   z_i = mu(x) + sigma(x) eps_i
(the log weight is Model.log_weights); L_1 is the ELBO and L_k rises to log p(x).

Encoder gradient estimators for IWAE, all with the same decoder gradient
sum_i w~_i grad_theta log w_i (w~ = normalized weights):
  reparam  the plain gradient of L_k (path and score terms);
  stl      "sticking the landing" (Roeder et al. 2017): log q is evaluated with its
           parameters behind stop_gradient, so only the path through z_i is left:
           sum_i w~_i  d log w_i / d z_i  dz_i / dphi;
  dreg     doubly reparameterized (Tucker et al. 2019, eq. 7): the same path
           derivative weighted by w~_i^2, unbiased for the IWAE gradient.
STL and DReG are written as surrogates whose value is L_k and whose gradient is
the estimator's.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from vbayes.errors import require
from vbayes.models import Model, ModelConfig, as_model
from vbayes.numerics import logmeanexp
from vbayes.objectives import gradient_step
from vbayes.objectives.base import ObjectiveConfig

ESTIMATORS = ("reparam", "stl", "dreg")
sg = jax.lax.stop_gradient


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(ObjectiveConfig):
  """k: samples per image; estimator: the encoder's gradient, reparam, stl or dreg."""
  name = "iwae"
  proposal = "gaussian"
  needs = frozenset({"density", "reparameterized"})
  k: int = 50
  estimator: str = "reparam"

  def __post_init__(self):
    require(self.k > 0, f"k must be positive, got {self.k}")
    require(self.estimator in ESTIMATORS,
            f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")


def iwae_bounds(params, eps_BxKxL, x_BxD, *, model: Model | ModelConfig,
                estimator: str = "reparam"):
  """The k-sample IWAE bound of each of B images, k = eps_BxKxL.shape[1].

  z_bi = draw of q(z|x_b) from the noise eps_bi; the decoder sees all B*k samples at
  once. Returns {"bound": L_k(x_b), "surrogate": a value whose gradient is the
  estimator's, "ess": effective sample size 1 / sum_i w~_bi^2}, each [B].
  """
  model = as_model(model)
  q = model.proposal_distribution(params, x_BxD)
  z_BxKxL, log_q_BxK = q.draw_and_log_prob(eps_BxKxL)
  log_w_BxK = model.log_weights(params, x_BxD, z_BxKxL, q, log_q_BxK=log_q_BxK)
  bound_B = logmeanexp(log_w_BxK, axis=1)
  w_norm_BxK = sg(jax.nn.softmax(log_w_BxK, axis=1))
  if estimator == "reparam":
    surrogate_B = bound_B
  elif estimator in ("stl", "dreg"):
    # Decoder: gradient of L_k with z held fixed. Encoder: the path derivative only,
    # through z, with every parameter of q (whatever q is) behind stop_gradient.
    q_fixed = sg(q)
    log_w_dec_BxK = model.log_weights(params, x_BxD, sg(z_BxKxL), q_fixed,
                                      log_q_BxK=sg(log_q_BxK))
    log_w_enc_BxK = model.log_weights(sg(params), x_BxD, z_BxKxL, q_fixed)
    coef_BxK = w_norm_BxK if estimator == "stl" else w_norm_BxK**2
    surrogate_B = (jax.nn.logsumexp(log_w_dec_BxK, axis=1)
                   + jnp.sum(coef_BxK * log_w_enc_BxK, axis=1))
    surrogate_B = surrogate_B - sg(surrogate_B) + sg(bound_B)  # value L_k, gradient unchanged
  else:
    raise ValueError(f"unknown estimator {estimator!r}: choose one of {ESTIMATORS}")
  ess_B = 1.0 / jnp.sum(w_norm_BxK**2, axis=1)
  return {"bound": bound_B, "surrogate": surrogate_B, "ess": ess_B}


def iwae_from_noise(params, eps_KxL, x_D, *, model: Model | ModelConfig,
                    estimator: str = "reparam"):
  """The k-sample IWAE bound of one image, k = eps_KxL.shape[0]: `iwae_bounds` on a batch of one.

  Returns {"bound": L_k, "surrogate", "ess"}, each a scalar.
  """
  out = iwae_bounds(params, eps_KxL[None], x_D[None], model=model, estimator=estimator)
  return {name: value[0] for name, value in out.items()}


def iwae(params, key, x_D, *, model: Model | ModelConfig, k: int, estimator: str = "reparam"):
  """`iwae_from_noise` with eps_i ~ N(0, I) drawn from `key`."""
  eps_KxL = jax.random.normal(key, (k, as_model(model).latent_dim))
  return iwae_from_noise(params, eps_KxL, x_D, model=model, estimator=estimator)


def iwae_loss(params, key, x_BxD, *, model: Model | ModelConfig, k: int,
              estimator: str = "reparam"):
  """-mean_b L_k(x_b); the k samples of all images are one [B, k, L] draw."""
  eps_BxKxL = jax.random.normal(key, (x_BxD.shape[0], k, as_model(model).latent_dim))
  out = iwae_bounds(params, eps_BxKxL, x_BxD, model=model, estimator=estimator)
  bound = jnp.mean(out["bound"])
  return -jnp.mean(out["surrogate"]), {"iwae_bound": bound, "ess": jnp.mean(out["ess"])}


init_state, make_update = gradient_step.for_loss(
    lambda model, settings: functools.partial(iwae_loss, model=model, k=settings.k,
                                              estimator=settings.estimator))
