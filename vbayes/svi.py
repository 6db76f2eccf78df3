"""Non-amortized stochastic variational inference for partly observed images.

For each image, fit q(z) = N(m, diag exp(v)) to p(z | x_obs) by maximizing

    ELBO(m, v) = E_q[log p(x_obs | z)] - KL(q(z) || p(z)),
    log p(x_obs | z) = sum_{d observed} log p(x_d | z),

with reparameterized Monte Carlo gradients and Adam (Hoffman et al. 2013 is the
stochastic-VI background; here q is free per image, not amortized by an encoder).
The decoder is held fixed. Images are fitted in parallel by vmap; the observed
pixels are any boolean/0-1 mask, e.g. the top half of the image.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from vbayes import distributions, precision
from vbayes.config import ModelConfig
from vbayes.models import Model, as_model
from vbayes.progress import Progress


def top_half_mask(image_shape: tuple[int, int]) -> jax.Array:
  """1 for the pixels of the top rows (h // 2 of them), 0 below: [h * w]."""
  h, w = image_shape
  return (jnp.arange(h * w) < (h // 2) * w).astype(jnp.float32)


@precision.estimates
def masked_elbo(q_params, params, key, x_D, mask_D, *, model: Model | ModelConfig,
                num_samples: int):
  """Monte Carlo ELBO of q = N(m, diag exp(v)) for the observed pixels of one image:
  (1/S) sum_s log p(x_obs | z_s) - KL(q || p(z)), z_s ~ q reparameterized; the KL in
  closed form where it has one, else (1/S) sum_s log q(z_s) - log p(z_s)."""
  model = as_model(model)
  q = distributions.DiagNormal(q_params["mean"], q_params["log_var"])
  z_SxL, log_q_S = q.sample_and_log_prob(key, num_samples)
  log_lik_S = jax.vmap(model.log_likelihood, in_axes=(None, 0, None, None))(
      params, z_SxL, x_D, mask_D)
  kl = distributions.kl_or_monte_carlo(q, model.prior_distribution(params),
                                          lambda: (z_SxL, log_q_S))
  return jnp.mean(log_lik_S) - kl


# Steps per jitted call of `fit_posterior`; progress lines come between calls.
STEPS_PER_CALL = 100


@functools.partial(jax.jit, static_argnames=("model", "steps", "num_samples", "learning_rate"))
@precision.estimates
def _fit_steps(params, key, x_BxD, mask_D, q, opt_state, t0, *, model: Model | ModelConfig,
               steps: int, num_samples: int, learning_rate: float):
  """Adam steps t0 .. t0 + steps - 1 on -ELBO, step t with the key fold_in(key, t)."""
  optimizer = optax.adam(learning_rate)
  neg_elbo = lambda qb, k, x: -masked_elbo(qb, params, k, x, mask_D, model=model,
                                           num_samples=num_samples)
  grad_fn = jax.vmap(jax.value_and_grad(neg_elbo))  # one q, key and image per row

  def step(carry, t):
    q, opt_state = carry
    keys = jax.random.split(jax.random.fold_in(key, t), x_BxD.shape[0])
    loss_B, grads = grad_fn(q, keys, x_BxD)
    updates, opt_state = optimizer.update(grads, opt_state, q)
    return (optax.apply_updates(q, updates), opt_state), -loss_B

  (q, opt_state), trace = jax.lax.scan(step, (q, opt_state), t0 + jnp.arange(steps))
  return q, opt_state, trace


def fit_posterior(params, key, x_BxD, mask_D, *, model: Model | ModelConfig,
                  steps: int = 2000, num_samples: int = 16, learning_rate: float = 1e-2,
                  init_mean_BxL=None, log=None):
  """Fits one Gaussian q(z) per image to p(z | observed pixels).

  Starts at N(init_mean, 0.1^2 I) (init_mean defaults to 0) and runs `steps` Adam
  steps on -ELBO, STEPS_PER_CALL of them per jitted call; with `log`, a progress
  line (rate, ETA) between calls at most every 10 s. Returns (mean_BxL,
  log_var_BxL, elbo_trace_TxB) with the ELBO of every step.
  """
  if steps <= 0:
    raise ValueError(f"steps must be positive, got {steps}")
  batch, latent = x_BxD.shape[0], as_model(model).latent_dim
  mean = jnp.zeros((batch, latent)) if init_mean_BxL is None else init_mean_BxL
  q = {"mean": mean, "log_var": jnp.full((batch, latent), 2.0 * jnp.log(0.1), jnp.float32)}
  opt_state = optax.adam(learning_rate).init(q)
  progress = Progress(f"stochastic VI of {batch} posteriors", total=steps, unit="steps", log=log)
  traces = []
  for t0 in range(0, steps, STEPS_PER_CALL):  # full calls, then the remainder
    n = min(STEPS_PER_CALL, steps - t0)
    q, opt_state, trace = _fit_steps(params, key, x_BxD, mask_D, q, opt_state, t0, model=model,
                                     steps=n, num_samples=num_samples,
                                     learning_rate=learning_rate)
    traces.append(trace)
    progress.update(t0 + n, wait_for=trace)
  return q["mean"], q["log_var"], jnp.concatenate(traces)


def fit_posterior_restarts(params, key, x_BxD, mask_D, *, model: Model | ModelConfig,
                           restarts: int, steps: int = 2000, num_samples: int = 16,
                           learning_rate: float = 1e-2, log=None):
  """`fit_posterior` from `restarts` starting means z_0 ~ p(z) per image; keeps the best.

  p(z | x_obs) of a trained decoder can have several modes and sharp ridges, and
  one run of stochastic VI stays in the basin it starts in. Each restart is an
  independent fit (all run at once under vmap); per image the restart with the
  highest ELBO, averaged over its last min(100, steps) steps, is returned.
  Returns (mean_BxL, log_var_BxL, elbo_trace_TxB) of the chosen restarts.
  """
  if restarts <= 0:
    raise ValueError(f"restarts must be positive, got {restarts}")
  batch = x_BxD.shape[0]
  init_key, fit_key = jax.random.split(key)
  init_mean = as_model(model).prior_distribution(params).sample(init_key, restarts * batch)
  mean, log_var, trace = fit_posterior(
      params, fit_key, jnp.tile(x_BxD, (restarts, 1)), mask_D, model=model, steps=steps,
      num_samples=num_samples, learning_rate=learning_rate, init_mean_BxL=init_mean, log=log)
  final_RxB = jnp.mean(trace[-min(100, steps):], axis=0).reshape(restarts, batch)
  best_B = jnp.argmax(final_RxB, axis=0)
  pick = lambda a: a.reshape(restarts, batch, *a.shape[1:])[best_B, jnp.arange(batch)]
  trace_TxB = trace.reshape(steps, restarts, batch)[:, best_B, jnp.arange(batch)]
  return pick(mean), pick(log_var), trace_TxB
