"""Numerically careful primitives that every estimator shares.

    softplus(l)                  log(1 + e^l), finite for every finite l
    logmeanexp(log_w, axis)      log (1/K) sum_k exp(log_w_k)
    logsumexp_over_chunks(f, xs) logsumexp of f(x_1), f(x_2), ... concatenated, one chunk at a time
    largest_divisor_at_most(n, cap)
"""

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


@jax.custom_jvp
def softplus(l: jax.Array) -> jax.Array:
  """log(1 + e^l) = max(l, 0) + log1p(e^{-|l|}): finite for every finite l.

  The same function as jax.nn.softplus, in a form XLA's CPU backend vectorizes.
  Its derivative is declared as sigmoid(l): differentiating max and |.| would
  give 0 at l = 0.
  """
  return jnp.maximum(l, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(l)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
  (l,), (dl,) = primals, tangents
  return softplus(l), jax.nn.sigmoid(l) * dl


def logmeanexp(log_w: jax.Array, axis: int = -1) -> jax.Array:
  """log (1/K) sum_k exp(log_w_k) over `axis` (K its length): the log of a mean weight."""
  return jax.nn.logsumexp(log_w, axis=axis) - math.log(log_w.shape[axis])


def logsumexp_over_chunks(chunk_fn: Callable[[Any], tuple[jax.Array, Any]], xs):
  """logsumexp over the last axis of every chunk's log terms, accumulated chunk by chunk.

  chunk_fn(x_n) -> (log_terms [..., C], sums): for each x_n along the leading axis
  of `xs` (a pytree), in a `lax.scan` whose carry is the running
      S = logaddexp(S, logsumexp_c log_terms_c),
  so memory holds one chunk however many there are. `sums` (any pytree of arrays,
  or None) is added up over the chunks alongside. Returns (S [...], the summed sums).
  """
  first = jax.tree.map(lambda a: a[0], xs)
  terms_shape, sums_shape = jax.eval_shape(chunk_fn, first)

  def body(carry, x):
    log_sum, sums = carry
    log_terms, chunk_sums = chunk_fn(x)
    log_sum = jnp.logaddexp(log_sum, jax.nn.logsumexp(log_terms, axis=-1))
    return (log_sum, jax.tree.map(jnp.add, sums, chunk_sums)), None

  init = (jnp.full(terms_shape.shape[:-1], -jnp.inf, terms_shape.dtype),
          jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sums_shape))
  (log_sum, sums), _ = jax.lax.scan(body, init, xs)
  return log_sum, sums


def largest_divisor_at_most(n: int, cap: int) -> int:
  """The largest d <= max(cap, 1) that divides n: a chunk size that splits n evenly."""
  return max(d for d in range(1, min(n, max(cap, 1)) + 1) if n % d == 0)
