"""Shared by the benchmarks: the machine's float32 matmul peak and FLOP counts."""

import time

import jax
import jax.numpy as jnp


def time_best(fn, *args, repeats: int = 5) -> float:
  """Best wall time of fn(*args) over `repeats` runs after one warm-up (compilation)."""
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return best


def training_steps_per_s(config, images, calls: int, steps_per_epoch: int) -> float:
  """Best steps/s of vbayes' training chunk for `config` (one compile, then `calls` timed).

  The state is donated from call to call, as in a real run.
  """
  from vbayes import train as train_lib  # pylint: disable=g-import-not-at-top
  chunk = train_lib.make_train_chunk(
      train_lib.make_update(config), batch_size=config.batch_size,
      steps_per_call=config.steps_per_call, steps_per_epoch=steps_per_epoch,
      binarization="fixed")
  state = train_lib.init_state(jax.random.key(0), config)
  keys = jax.random.key(1), jax.random.key(2)
  state, metrics = chunk(state, images, *keys)  # compile
  jax.block_until_ready(metrics)
  best = float("inf")
  for _ in range(calls):
    start = time.perf_counter()
    state, metrics = chunk(state, images, *keys)
    jax.block_until_ready(metrics)
    best = min(best, time.perf_counter() - start)
  return config.steps_per_call / best


def matmul_peak_gflops(sizes=(1024, 2048), chain: int = 8) -> float:
  """The best float32 GFLOP/s of chained n x n matmuls inside one jit (no dispatch cost).

  Each product depends on the previous one, so none can be skipped or hoisted.
  """
  best = 0.0
  for n in sizes:
    a = jax.random.normal(jax.random.key(n), (n, n), jnp.float32) / n
    chained = jax.jit(lambda m: jax.lax.fori_loop(0, chain, lambda _, c: c @ m, m))
    seconds = time_best(chained, a)
    best = max(best, 2.0 * n**3 * chain / seconds / 1e9)
  return best


def mlp_train_flops(sizes: tuple[int, ...], batch: int, input_gradient: bool = False) -> float:
  """Matmul FLOPs of one forward and backward pass of an MLP with these layer sizes.

  Forward 2*B*m*n per layer; backward 2*B*m*n for the weight gradient and 2*B*m*n
  for the input gradient, which the first layer needs only if `input_gradient`.
  """
  macs = [m * n for m, n in zip(sizes[:-1], sizes[1:])]
  return 2.0 * batch * (3 * sum(macs) - (0 if input_gradient else macs[0]))
