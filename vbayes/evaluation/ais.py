r"""Annealed importance sampling (Neal 2001) and bidirectional Monte Carlo (Grosse et al.
2015), written against the model interface: every prior, proposal and likelihood works.

AIS anneals from a proposal q0(z) to the posterior p(z | x) through

    log gamma_t(z) = log q0(z) + beta_t [log p(x, z) - log q0(z)],   0 = beta_0 < ... < beta_T = 1,

with z_0 ~ q0, and for t = 1..T the weight update then a transition that leaves gamma_t
invariant:

    log w += (beta_t - beta_{t-1}) [log p(x, z_{t-1}) - log q0(z_{t-1})],   z_t ~ HMC_t(z_{t-1}).

E[w] = p(x) for transitions fixed in advance, so log (1/C) sum_c w_c over C chains is a
stochastic lower bound on log p(x) that is exact as T grows. The transitions are
Hamiltonian Monte Carlo: unit mass, `leapfrog_steps` leapfrog steps of step size eps_t.
Adapting eps moves it after every transition toward a target acceptance rate (times 1.02
above it, 0.98 below, within [MIN_STEP, MAX_STEP]), as the reference implementations of
Wu et al. (2017) and of BDMC do during the run. A step size that depends on the chain's
own past makes E[w] = p(x) only approximate, so by default (`tuning="pilot"`) the
adaptation runs on separate pilot chains, its step sizes (per transition and image, the
geometric mean over the pilot's chains) are frozen, and the estimate comes from fresh
chains that use them: transitions fixed in advance, E[w] = p(x) exactly.
`tuning="adaptive"` adapts inside the estimating chains (the reference implementations'
way); `tuning="fixed"` keeps `initial_step_size` throughout.

Reverse AIS runs the same chain from an exact posterior sample with beta from 1 to 0;
its weights estimate 1 / p(x), so -log (1/C) sum_c w_c is a stochastic upper bound.
On data simulated from the model, where the z that made x is an exact posterior sample,
the forward and reverse bounds sandwich log p(x) (BDMC); their gap bounds AIS's error.

Shapes: B images, C chains each, L latent dimensions; chains and images are one
[B, C, L] array, the annealing loop one `lax.scan`, the leapfrog loop another.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vbayes import precision
from vbayes.config import ModelConfig
from vbayes.models import Model, as_model
from vbayes.numerics import logmeanexp

SCHEDULES = ("linear", "sigmoid")
TUNINGS = ("pilot", "adaptive", "fixed")
STEP_GROWTH = 1.02  # step size multiplier after a transition above the target acceptance
STEP_SHRINK = 0.98  # ... and below it
MIN_STEP, MAX_STEP = 1e-4, 0.5  # the range adaptation keeps a step size in


def betas(num_steps: int, schedule: str = "sigmoid", sharpness: float = 4.0) -> np.ndarray:
  """beta_0 = 0 < beta_1 < ... < beta_T = 1, T = num_steps: [T + 1].

  linear: beta_t = t / T. sigmoid (Wu et al. 2017): s_t = sigmoid(sharpness (2t/T - 1)),
  rescaled to run from 0 to 1, (s_t - s_0) / (s_T - s_0): small steps near both ends.
  """
  if num_steps < 1:
    raise ValueError(f"AIS needs at least one step, got {num_steps}")
  t = np.arange(num_steps + 1) / num_steps
  if schedule == "linear":
    return t
  if schedule == "sigmoid":
    s = 1.0 / (1.0 + np.exp(-sharpness * (2.0 * t - 1.0)))
    return (s - s[0]) / (s[-1] - s[0])
  raise ValueError(f"unknown schedule {schedule!r}: choose one of {SCHEDULES}")


class HMCSettings(NamedTuple):
  """HMC transitions of AIS; `tuning` is one of TUNINGS (see the module docstring)."""
  leapfrog_steps: int = 10
  initial_step_size: float = 0.01
  target_acceptance: float = 0.65
  tuning: str = "pilot"
  pilot_chains: int = 4  # chains per image of the pilot run (tuning="pilot")

  def check(self):
    if self.tuning not in TUNINGS:
      raise ValueError(f"unknown step-size tuning {self.tuning!r}: choose one of {TUNINGS}")
    if self.leapfrog_steps < 1 or self.pilot_chains < 1 or not self.initial_step_size > 0:
      raise ValueError(f"HMC needs leapfrog_steps >= 1, pilot_chains >= 1 and a positive "
                       f"initial step size, got {self}")


def _value_and_grad(log_density, z_BxCxL):
  """(log_density(z) [B, C], its gradient in z [B, C, L]): chains are independent, so one
  vector-Jacobian product with ones gives every chain's gradient."""
  value, pullback = jax.vjp(log_density, z_BxCxL)
  return value, pullback(jnp.ones_like(value))[0]


def density(log_density):
  """evaluate(z) -> (log density, its gradient, None) for `hmc_step`, from log_density(z)."""
  return lambda z: (*_value_and_grad(log_density, z), None)


def hmc_step(evaluate, key, z_BxCxL, at_z, step_BxC, leapfrog_steps: int):
  """One HMC transition of every chain, invariant for the density whose log and gradient
  at z [B, C, L] evaluate(z) returns as (value [B, C], grad [B, C, L], aux) (chains
  independent; aux: anything else known at z, carried with it); at_z = evaluate(z_BxCxL),
  known already. Momentum p ~ N(0, I), leapfrog steps

      p <- p + (eps/2) grad,  z <- z + eps p,  p <- p + (eps/2) grad,

  then accept with probability min(1, exp(H(z, p) - H(z', p'))), H = -log density +
  |p|^2 / 2, eps = step_BxC per chain. Returns (z, evaluate(z), acceptance probability
  [B, C]), each point evaluated once."""
  momentum_key, accept_key = jax.random.split(key)
  p0 = jax.random.normal(momentum_key, z_BxCxL.shape, z_BxCxL.dtype)
  eps = step_BxC[..., None]

  def leapfrog(carry, _):
    z, p, (_, grad, _) = carry
    p = p + 0.5 * eps * grad
    z = z + eps * p
    at = evaluate(z)
    p = p + 0.5 * eps * at[1]
    return (z, p, at), None

  (z1, p1, at_z1), _ = jax.lax.scan(leapfrog, (z_BxCxL, p0, at_z), None,
                                    length=leapfrog_steps)
  log_ratio = (at_z1[0] - 0.5 * jnp.sum(p1**2, axis=-1)) - (at_z[0] - 0.5 * jnp.sum(p0**2, axis=-1))
  log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)  # a diverged proposal
  accept_prob = jnp.exp(jnp.minimum(log_ratio, 0.0))
  accept = jax.random.uniform(accept_key, accept_prob.shape) < accept_prob
  keep = lambda new, old: jnp.where(accept.reshape(accept.shape + (1,) * (new.ndim - 2)),
                                    new, old)
  return keep(z1, z_BxCxL), jax.tree.map(keep, at_z1, at_z), accept_prob


def adapted_step(step_BxC, accept_prob_BxC, target: float):
  """eps * 1.02 where the acceptance probability was above the target, * 0.98 below,
  clipped to [MIN_STEP, MAX_STEP]."""
  factor = jnp.where(accept_prob_BxC > target, STEP_GROWTH, STEP_SHRINK)
  return jnp.clip(step_BxC * factor, MIN_STEP, MAX_STEP)


def anneal(params, key, x_BxD, z0_BxCxL, q0, betas_T1, *, model: Model | ModelConfig,
           settings: HMCSettings = HMCSettings(), step_sizes_TxB=None):
  """The AIS chains from z0 along betas (forward when they rise, reverse when they
  fall): log w [B, C] = sum_t (beta_t - beta_{t-1}) [log p(x, z_{t-1}) - log q0(z_{t-1})],
  with an HMC transition for gamma_t after each update (none after the last), T - 1 in
  all. Transition t's step size is step_sizes_TxB[t] (per image, shared by its chains:
  fixed in advance) when given; otherwise each chain starts at
  settings.initial_step_size and adapts after every transition (`adapted_step`).
  log q0, log p(x, z) and their gradients are computed once per point and carried:
  log gamma_t and its gradient are their mix, and the weight update reuses them.
  Returns (log_w_BxC, mean acceptance probability per image [B], final z, the step
  sizes used [T - 1, B]: per transition, the geometric mean over each image's chains)."""
  model = as_model(model)
  betas_T1 = jnp.asarray(betas_T1, jnp.float32)
  log_joint = lambda z: (model.log_likelihood_of_samples(params, z, x_BxD)
                         + model.log_prior(params, z))

  def parts(z):
    """(log q0(z), log p(x, z)) [B, C] each and their gradients in z."""
    log_q0, grad_q0 = _value_and_grad(q0.log_prob, z)
    joint, grad_joint = _value_and_grad(log_joint, z)
    return log_q0, joint, grad_q0, grad_joint

  def evaluate_at(beta):
    def evaluate(z):
      at = parts(z)
      log_q0, joint, grad_q0, grad_joint = at
      return log_q0 + beta * (joint - log_q0), grad_q0 + beta * (grad_joint - grad_q0), at
    return evaluate

  batch_chains = z0_BxCxL.shape[:2]
  num = betas_T1.shape[0] - 1
  frozen = step_sizes_TxB is not None
  if frozen and jnp.shape(step_sizes_TxB) != (num - 1, batch_chains[0]):
    raise ValueError(f"step_sizes_TxB must be [T - 1, B] = {(num - 1, batch_chains[0])}, "
                     f"got {jnp.shape(step_sizes_TxB)}")

  def body(carry, inputs):
    z, at, log_w, step, accept_sum = carry
    t, beta_prev, beta, frozen_step_B = inputs
    if frozen:
      step = jnp.broadcast_to(frozen_step_B[:, None], batch_chains)
    log_q0, joint, grad_q0, grad_joint = at
    log_w = log_w + (beta - beta_prev) * (joint - log_q0)
    at_z = (log_q0 + beta * (joint - log_q0), grad_q0 + beta * (grad_joint - grad_q0), at)
    z, (_, _, at), accept = hmc_step(evaluate_at(beta), jax.random.fold_in(key, t), z, at_z,
                                     step, settings.leapfrog_steps)
    used_B = jnp.exp(jnp.mean(jnp.log(step), axis=1))
    if not frozen:
      step = adapted_step(step, accept, settings.target_acceptance)
    return (z, at, log_w, step, accept_sum + accept), used_B

  init = (z0_BxCxL, parts(z0_BxCxL), jnp.zeros(batch_chains),
          jnp.full(batch_chains, settings.initial_step_size), jnp.zeros(batch_chains))
  # The last update needs no transition after it: T - 1 transitions in the scan, then
  # the final weight update.
  frozen_TxB = (jnp.asarray(step_sizes_TxB, jnp.float32) if frozen
                else jnp.zeros((num - 1, batch_chains[0])))
  inputs = (jnp.arange(num - 1), betas_T1[:-2], betas_T1[1:-1], frozen_TxB)
  (z, (log_q0, joint, _, _), log_w, _, accept_sum), used_TxB = jax.lax.scan(body, init,
                                                                            inputs)
  log_w = log_w + (betas_T1[-1] - betas_T1[-2]) * (joint - log_q0)
  accept_rate_B = jnp.mean(accept_sum, axis=1) / max(num - 1, 1)
  return log_w, accept_rate_B, z, used_TxB


def frozen_step_sizes(params, key, x_BxD, q0, betas_T1, *, model: Model | ModelConfig,
                      settings: HMCSettings):
  """The step sizes [T - 1, B] that a run on these images will use, fixed in advance:
  tuning="pilot": those a pilot of settings.pilot_chains adapting chains from q0 reached
  at each transition (geometric mean over the pilot's chains); "fixed":
  initial_step_size throughout; "adaptive": None (each chain adapts as it runs)."""
  settings.check()
  if settings.tuning == "adaptive":
    return None
  batch, num = x_BxD.shape[0], len(betas_T1) - 1
  if settings.tuning == "fixed":
    return jnp.full((num - 1, batch), settings.initial_step_size)
  init_key, chain_key = jax.random.split(key)
  z0, _ = q0.sample_and_log_prob(init_key, settings.pilot_chains)
  return anneal(params, chain_key, x_BxD, z0, q0, betas_T1, model=model,
                settings=settings)[3]


@functools.partial(jax.jit, static_argnames=("model", "chains", "num_steps", "schedule",
                                             "settings"))
@precision.estimates
def ais_log_likelihood(params, key, x_BxD, q0, *, model: Model | ModelConfig, chains: int,
                       num_steps: int, schedule: str = "sigmoid",
                       settings: HMCSettings = HMCSettings()):
  """Forward AIS from q0 (a distribution of batch shape [B] with sample_and_log_prob)
  with `chains` chains per image and `num_steps` intermediate distributions, step sizes
  tuned as settings.tuning says (by default on a pilot run, with its own key, then
  frozen).

  Returns {"log_px": log (1/C) sum_c w_c [B], "stderr": its delta-method standard error
  sd_c(w) / (mean_c(w) sqrt(C)) [B], "acceptance": mean HMC acceptance [B], "log_w": the
  chains' log weights [B, C], "step_sizes": those used [T - 1, B]}. With num_steps = 1
  there is no transition: importance sampling from q0 with the same draws.
  """
  # Three independent streams. Under jax_threefry_partitionable (JAX's default)
  # split(key, 3)[:2] equals split(key), so the estimating chains' draws do not depend on
  # the tuning, and fold_in(key, 1) would equal split(key)[1]: hence no fold_in here.
  init_key, chain_key, pilot_key = jax.random.split(key, 3)
  schedule_T1 = betas(num_steps, schedule)
  step_sizes = frozen_step_sizes(params, pilot_key, x_BxD, q0, schedule_T1, model=model,
                                 settings=settings)
  z0, _ = q0.sample_and_log_prob(init_key, chains)
  log_w, acceptance, _, used = anneal(params, chain_key, x_BxD, z0, q0, schedule_T1,
                                      model=model, settings=settings,
                                      step_sizes_TxB=step_sizes)
  return {"log_px": logmeanexp(log_w, axis=1), "stderr": weight_stderr(log_w),
          "acceptance": acceptance, "log_w": log_w, "step_sizes": used}


def weight_stderr(log_w_BxC) -> jax.Array:
  """sd_c(w) / (mean_c(w) sqrt(C)) per row, from log weights (the delta method's standard
  error of log mean w; 0 for one chain)."""
  chains = log_w_BxC.shape[-1]
  w = jnp.exp(log_w_BxC - jnp.max(log_w_BxC, axis=-1, keepdims=True))
  if chains < 2:
    return jnp.zeros(w.shape[:-1])
  return jnp.std(w, axis=-1, ddof=1) / (jnp.mean(w, axis=-1) * math.sqrt(chains))


@functools.partial(jax.jit, static_argnames=("model", "chains", "num_steps", "schedule",
                                             "settings"))
@precision.estimates
def bdmc(params, key, x_BxD, z_true_BxL, q0, *, model: Model | ModelConfig, chains: int,
         num_steps: int, schedule: str = "sigmoid", settings: HMCSettings = HMCSettings()):
  """Bidirectional Monte Carlo on images x simulated from the model with latents z_true:
  forward AIS from q0 (a lower bound) and reverse AIS from z_true (an exact posterior
  sample; every chain starts there) down to q0 (an upper bound) of log p(x). Both use
  the same step size at the same beta: the forward run's (tuned on its pilot) reversed.

  Returns {"lower": [B], "upper": [B], "acceptance_forward", "acceptance_reverse"}.
  """
  forward_key, reverse_key = jax.random.split(key)
  forward = ais_log_likelihood(params, forward_key, x_BxD, q0, model=model, chains=chains,
                               num_steps=num_steps, schedule=schedule, settings=settings)
  z0 = jnp.broadcast_to(z_true_BxL[:, None, :], (z_true_BxL.shape[0], chains,
                                                  z_true_BxL.shape[-1]))
  reverse_steps = None if settings.tuning == "adaptive" else forward["step_sizes"][::-1]
  log_w_rev, acceptance_rev, _, _ = anneal(params, reverse_key, x_BxD, z0, q0,
                                           betas(num_steps, schedule)[::-1].copy(),
                                           model=model, settings=settings,
                                           step_sizes_TxB=reverse_steps)
  return {"lower": forward["log_px"], "upper": -logmeanexp(log_w_rev, axis=1),
          "acceptance_forward": forward["acceptance"], "acceptance_reverse": acceptance_rev}


@precision.estimates
def simulate(params, key, num: int, *, model: Model | ModelConfig):
  """num pairs (z, x) from the model: z ~ p(z), x ~ p(x | z). Returns (z [N, L], x [N, D])."""
  model = as_model(model)
  z_key, x_key = jax.random.split(key)
  z = model.prior_distribution(params).sample(z_key, num)
  x = jax.vmap(model.sample_image, in_axes=(None, 0, 0))(params, jax.random.split(x_key, num), z)
  return z, x
