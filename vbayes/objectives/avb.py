r"""Adversarial variational Bayes (Mescheder, Nowozin & Geiger 2017), with and
without adaptive contrast.

Implicit encoder: z = g_phi(x, eps), eps ~ N(0, I_E), fed to the network with x,
so q_phi(z|x) has no density we can evaluate. The adversary T_psi(x, z) learns
the log-density ratio instead. For fixed q the logistic objective (Algorithm 1)

    max_psi  E_x [ E_{q(z|x)} log sigmoid(T(x, z)) + E_{p(z)} log(1 - sigmoid(T(x, z))) ]

is maximized by T*(x, z) = log q(z|x) - log p(z) (Prop. 1), so E_q[T*] =
KL(q(z|x) || p(z)) and the encoder/decoder maximize

    E_x E_eps [ -T*(x, g(x, eps)) + log p_theta(x | g(x, eps)) ],

the ELBO; E_q[grad_phi T*] = 0 (Prop. 2), so the gradient may flow through z
into T. T is parametrized as T(x, z) = f_psi(x, z) - log p(z) (the prior term
added, in closed form): the network then only has to learn log q(z|x) up to a
constant, not the prior's quadratic too.

Adaptive contrast (Sec. 4). With r(z|x) = N(mu(x), diag sigma^2(x)), mu and
sigma^2 the mean and variance of M encoder samples drawn apart from the K scored
ones (`contrast_moments`: moments of the scored samples bias the estimate), and the
normalized z~ = (z - mu) / sigma, whose density is q~(z~|x) = q(z|x) prod sigma:

    log q(z|x) - log p(z)
      = [log q~(z~|x) - log N(z~; 0, I)] + [log N(z~; 0, I) - sum log sigma] - log p(z)
      = [log q~(z~|x) - log N(z~; 0, I)] + log r(z|x) - log p(z).

So KL(q || p) = KL(q~ || N(0, I)) + E_q[log r(z|x) - log p(z)]. The adversary
now tells z~ from eps ~ N(0, I) (an easier task: q~ is close to N(0, I)), its
optimum T*(x, z~) = log q~(z~|x) - log N(z~; 0, I), and the per-sample KL term
of the model's loss is T(x, z~) + log r(z|x) - log p(z). The identity holds for
any fixed mu and sigma, so with separate moment samples they are held fixed (no
gradient through them); with moment_samples=0 (the K scored samples, the old
estimator) the gradient flows through them, as before.

All losses are per image and vmapped; logits go through log_sigmoid, so no
probability is ever formed.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from vbayes import optimizers
from vbayes.errors import positive_finite, require
from vbayes.models import Model, nets
from vbayes.objectives import gradient_step
from vbayes.objectives.avb_adversary import (Params, run_model, adversary_logit,
                                             batch_contrast_moments, contrast_moments,
                                             contrast_reference, encoder_samples, init_adversary)
from vbayes.objectives.base import ObjectiveConfig

# `config: TrainConfig` below is the run's vbayes.config.TrainConfig, named in annotations
# only (postponed, PEP 563): vbayes.config imports the objectives, not the other way.

MOMENT_STREAM = 7  # adaptive contrast's moment samples use fold_in(key, 7)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(ObjectiveConfig):
  """Adversarial variational Bayes settings.

  samples: K encoder samples per image for each loss; moment_samples: M further
  encoder samples per image for the moment-matched r(z|x) of adaptive contrast (0:
  the moments of the K scored samples, as before this option; biased, see
  contrast_moments); adversary_steps: adversary updates per model update;
  adversary_activation: T(x, z)'s hidden activation; kl_warmup_steps: the KL weight
  rises linearly to 1 over this many steps.
  """
  name = "avb"
  proposal = "implicit"
  needs = frozenset({"implicit"})
  adaptive_contrast: bool = False
  adversary_hidden_sizes: tuple[int, ...] = (256, 256)
  adversary_activation: str = "relu"
  adversary_learning_rate: float = 1e-3
  adversary_steps: int = 1
  samples: int = 8
  moment_samples: int = 128
  kl_warmup_steps: int = 0

  def __post_init__(self):
    for name in ("adversary_steps", "samples"):
      require(getattr(self, name) > 0, f"avb {name} must be positive, got {getattr(self, name)}")
    require(positive_finite(self.adversary_learning_rate),
            "adversary_learning_rate must be positive and finite, got "
            f"{self.adversary_learning_rate}")
    require(self.moment_samples >= 0, f"avb moment_samples must be >= 0, got "
            f"{self.moment_samples}")
    require(not self.adaptive_contrast or self.moment_samples > 1
            or (self.moment_samples == 0 and self.samples > 1),
            "adaptive contrast needs at least 2 samples per image for its moments")
    require(all(h > 0 for h in self.adversary_hidden_sizes),
            f"adversary_hidden_sizes must all be positive, got {self.adversary_hidden_sizes}")
    require(self.kl_warmup_steps >= 0,
            f"kl_warmup_steps must be >= 0, got {self.kl_warmup_steps}")
    require(self.adversary_activation in nets.ACTIVATIONS, "adversary_activation must be one "
            f"of {tuple(nets.ACTIVATIONS)}, got {self.adversary_activation!r}")

  def trajectory_dict(self) -> dict[str, Any]:
    d = self.to_dict()
    if not self.adaptive_contrast:  # read by adaptive contrast alone
      d.pop("moment_samples")
    return d


def adversary_loss_per_example(adv_params, params, key, x_D, moments=None, *,
                               config: TrainConfig, model: Model | None = None):
  """-[ mean_k log sigmoid(T(x, z_k)) + mean_k log sigmoid(-T(x, z'_k)) ].

  z_k from q(z|x) (normalized by the moment-matched r with adaptive contrast: by
  `moments` = (mu_L, sigma_L) if given, else by `contrast_moments`), z'_k from the
  prior (N(0, I) with adaptive contrast);
  K = config.objective.samples. The model's parameters are held fixed.
  """
  q_key, p_key = jax.random.split(key)
  k = config.objective.samples
  model = run_model(config, model)
  z_KxL = jax.lax.stop_gradient(encoder_samples(params, model, q_key, x_D, k))
  if config.objective.adaptive_contrast:
    mean_L, sd_L = jax.lax.stop_gradient(moments if moments is not None else contrast_moments(
        params, config, jax.random.fold_in(key, MOMENT_STREAM), x_D, z_KxL, model))
    z_KxL = (z_KxL - mean_L) / sd_L
  reference = contrast_reference(params, config, model)
  z_prior_KxL = reference.sample(p_key, k)
  t = lambda z: adversary_logit(adv_params, config, x_D, z, reference.log_prob)
  t_q_K, t_p_K = jax.vmap(t)(z_KxL), jax.vmap(t)(z_prior_KxL)
  loss = -jnp.mean(jax.nn.log_sigmoid(t_q_K)) - jnp.mean(jax.nn.log_sigmoid(-t_p_K))
  accuracy = 0.5 * (jnp.mean(t_q_K > 0) + jnp.mean(t_p_K < 0))
  return loss, {"adversary_accuracy": accuracy}


def model_loss_per_example(params, adv_params, key, x_D, beta, moments=None, *,
                           config: TrainConfig, model: Model | None = None):
  """mean_k [ beta * KL_k - log p(x | z_k) ],  z_k = g(x, eps_k), k = 1..K.

  KL_k = T(x, z_k) without adaptive contrast; with it,
  KL_k = T(x, z~_k) + log r(z_k|x) - log p(z_k), r's moments `moments` if given, else
  `contrast_moments`. The mean of KL_k estimates KL(q(z|x) || p(z)), so beta = 1
  gives the negative ELBO.
  """
  model = run_model(config, model)
  z_KxL = model.sample_proposal(params, key, x_D, config.objective.samples)
  log_lik_K = jax.vmap(model.log_likelihood, in_axes=(None, 0, None))(params, z_KxL, x_D)
  reference = contrast_reference(params, config, model)
  t = lambda z: adversary_logit(adv_params, config, x_D, z, reference.log_prob)
  if config.objective.adaptive_contrast:
    mean_L, sd_L = moments if moments is not None else contrast_moments(
        params, config, jax.random.fold_in(key, MOMENT_STREAM), x_D, z_KxL, model)
    z_tilde_KxL = (z_KxL - mean_L) / sd_L
    # log r(z|x) = log N(z~; 0, I) - sum_l log sigma_l (the change of variables z -> z~)
    log_r_K = reference.log_prob(z_tilde_KxL) - jnp.sum(jnp.log(sd_L))
    kl_K = jax.vmap(t)(z_tilde_KxL) + log_r_K - model.log_prior(params, z_KxL)
  else:
    kl_K = jax.vmap(t)(z_KxL)
  kl, log_lik = jnp.mean(kl_K), jnp.mean(log_lik_K)
  return beta * kl - log_lik, {"kl": kl, "log_likelihood": log_lik, "elbo": log_lik - kl}


def adversary_loss(adv_params, params, key, x_BxD, moments_BxL=None, *, config: TrainConfig,
                   model: Model | None = None):
  """The batch mean of `adversary_loss_per_example` (one key per image)."""
  keys = jax.random.split(key, x_BxD.shape[0])
  fn = functools.partial(adversary_loss_per_example, config=config, model=model)
  values, metrics = jax.vmap(fn, in_axes=(None, None, 0, 0, 0))(adv_params, params, keys, x_BxD,
                                                                moments_BxL)
  return jnp.mean(values), jax.tree.map(jnp.mean, metrics)


def model_loss(params, adv_params, key, x_BxD, beta, moments_BxL=None, *, config: TrainConfig,
               model: Model | None = None):
  """The batch mean of `model_loss_per_example` (one key per image)."""
  keys = jax.random.split(key, x_BxD.shape[0])
  fn = functools.partial(model_loss_per_example, config=config, model=model)
  values, metrics = jax.vmap(fn, in_axes=(None, None, 0, 0, None, 0))(
      params, adv_params, keys, x_BxD, beta, moments_BxL)
  return jnp.mean(values), jax.tree.map(jnp.mean, metrics)


def make_optimizers(config: TrainConfig, steps_per_epoch: int | None = None):
  """(model optimizer, adversary optimizer): the one-loss objectives' Adam for the model,
  `optimizers.adam` at the adversary's own (constant) learning rate for T."""
  return (gradient_step.optimizer(config, steps_per_epoch),
          optimizers.adam(config.objective.adversary_learning_rate, config.grad_clip))


def split_params(params: Params):
  """(the model's encoder and decoder, the adversary)."""
  model = {k: v for k, v in params.items() if k != "adversary"}
  return model, params["adversary"]


def init_state(key: jax.Array, model: Model, config: TrainConfig) -> dict:
  """The model's and the adversary's parameters (one dict, the adversary under
  "adversary"), each player's Adam state, step 0."""
  model_key, adv_key = jax.random.split(key)
  model_params = model.init(model_key)
  adversary = init_adversary(adv_key, config, model)
  model_opt, adv_opt = make_optimizers(config, steps_per_epoch=1)  # the states do not
  return {"params": {**model_params, "adversary": adversary},  # depend on the stages' length
          "opt_state": {"model": model_opt.init(model_params),
                        "adversary": adv_opt.init(adversary)},
          "step": jnp.zeros((), jnp.int32)}


def kl_weight(config: TrainConfig, step) -> jax.Array:
  """beta_t = min(1, (t + 1) / warmup) (1 without warm-up): gradient_step.warmup_weight."""
  return gradient_step.warmup_weight(step, config.objective.kl_warmup_steps)


def make_update(model: Model, config: TrainConfig, steps_per_epoch: int | None = None):
  """One AVB step (Algorithm 1): config.objective.adversary_steps adversary updates on
  the batch, each with fresh samples, then one encoder/decoder update.

  update(params, opt_state, step, key, x_BxD) -> (params, opt_state, metrics);
  metrics["loss"] is the model's loss (beta * KL estimate - log-likelihood).
  steps_per_epoch: the length of an epoch, for a staged learning rate.
  """
  model_opt, adv_opt = make_optimizers(config, steps_per_epoch)
  adv_grad = jax.value_and_grad(functools.partial(adversary_loss, config=config, model=model),
                                has_aux=True)
  model_grad = jax.value_and_grad(functools.partial(model_loss, config=config, model=model),
                                  has_aux=True)

  def update(params, opt_state, step, key, x_BxD):
    model_params, adversary = split_params(params)
    adv_state = opt_state["adversary"]
    # One draw of the moments serves the update's adversary steps and its model step:
    # all of them score samples drawn apart from the moments' samples.
    moments = None
    if config.objective.adaptive_contrast and config.objective.moment_samples:
      moments = batch_contrast_moments(model_params, jax.random.fold_in(key, 2), x_BxD,
                                       config=config, model=model)
    adv_keys = jax.random.split(jax.random.fold_in(key, 0), config.objective.adversary_steps)
    for adv_key in adv_keys:  # a few, unrolled
      (adv_value, adv_metrics), grads = adv_grad(adversary, model_params, adv_key, x_BxD, moments)
      updates, adv_state = adv_opt.update(grads, adv_state, adversary)
      adversary = optax.apply_updates(adversary, updates)
    (value, metrics), grads = model_grad(model_params, adversary, jax.random.fold_in(key, 1), x_BxD,
                                         kl_weight(config, step), moments)
    updates, model_state = model_opt.update(grads, opt_state["model"], model_params)
    model_params = optax.apply_updates(model_params, updates)
    metrics = {"loss": value, **metrics, "adversary_loss": adv_value, **adv_metrics}
    return ({**model_params, "adversary": adversary},
            {"model": model_state, "adversary": adv_state}, metrics)

  return update
