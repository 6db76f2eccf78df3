"""Shared by the benchmarks: the machine's float32 matmul peak, FLOP counts, and
ceilings: the same networks' matmuls timed with (almost) nothing else."""

import time

import jax
import jax.numpy as jnp
import optax


def time_best(fn, *args, repeats: int = 5) -> float:
  """Best wall time of fn(*args) over `repeats` runs after one warm-up (compilation)."""
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return best


def _best_seconds(run, state, repeats: int) -> float:
  """Best wall time of state = run(state) over `repeats` calls after one warm-up (compilation)."""
  state = run(state)  # compile
  jax.block_until_ready(state)
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    state = run(state)
    jax.block_until_ready(state)
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
  seconds = _best_seconds(lambda state: chunk(state, images, *keys)[0], state, calls)
  return config.steps_per_call / seconds


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


def _random_weights(key, sizes):
  keys = jax.random.split(key, len(sizes) - 1)
  return [jax.random.normal(k, (m, n)) / jnp.sqrt(m)
          for k, m, n in zip(keys, sizes[:-1], sizes[1:])]


def relu_mlp(ws, h):
  """h -> relu(h W_1) -> ... -> relu(h W_n): ReLU after every layer, the last included."""
  for w in ws:
    h = jnp.maximum(h @ w, 0.0)
  return h


def matmul_ceiling_steps_per_s(encoder_sizes: tuple[int, ...], decoder_sizes: tuple[int, ...],
                               batch: int, k: int = 1, steps: int = 200, repeats: int = 3,
                               adam: bool = False) -> float:
  """Best steps/s of the same network's matmuls with nearly nothing else: a ceiling.

  The encoder and decoder are bias-free ReLU MLPs of the given sizes, wired as in
  the VAE: the decoder's B*k input rows depend on the encoder's output, so its
  input gradient is taken. The loss is sum(c * relu(output)) for fixed random c
  (nonlinear in the output, so XLA cannot fold the last product into the loss)
  and the update is plain SGD: a step is the matmuls of `mlp_train_flops` plus
  ReLU masks and one pass over the parameters, with no likelihood, KL, sampling,
  Adam or metrics. With adam=True the update is optax.adam instead: the ceiling
  of any Adam-trained step of these shapes. Steps run in a fori_loop inside one
  jit, state donated.
  """
  keys = iter(jax.random.split(jax.random.key(0), 16))
  weights = lambda sizes: _random_weights(next(keys), sizes)
  latent = decoder_sizes[0]
  x = jax.random.normal(next(keys), (batch, encoder_sizes[0]))
  base_z = jax.random.normal(next(keys), (batch * k, latent))
  enc_grad = jax.random.normal(next(keys), (batch, encoder_sizes[-1]))
  dec_grad = jax.random.normal(next(keys), (batch * k, decoder_sizes[-1]))

  def loss(params):
    enc_out = relu_mlp(params[0], x)
    z = base_z + 1e-3 * jnp.repeat(enc_out[:, :latent], k, axis=0)
    return jnp.vdot(enc_out, enc_grad) + jnp.vdot(relu_mlp(params[1], z), dec_grad)

  optimizer = optax.adam(1e-6) if adam else optax.sgd(1e-9)

  def run(state):
    def step(_, state):
      params, opt_state = state
      updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state, params)
      return optax.apply_updates(params, updates), opt_state
    return jax.lax.fori_loop(0, steps, step, state)

  params = (weights(encoder_sizes), weights(decoder_sizes))
  run = jax.jit(run, donate_argnums=0)
  return steps / _best_seconds(run, (params, optimizer.init(params)), repeats)


def forward_ceiling_rows_per_s(sizes: tuple[int, ...], rows: int, steps: int = 50,
                               repeats: int = 3) -> float:
  """Best rows/s of forward passes of a bias-free ReLU MLP (`relu_mlp`) on [rows, sizes[0]]
  blocks: the matmuls of evaluation with nothing else (no likelihood, sampling or
  log-sum-exp). Each step's input differs, and its output is reduced to a scalar.
  """
  keys = jax.random.split(jax.random.key(0), 3)
  ws = _random_weights(keys[0], sizes)
  h0 = jax.random.normal(keys[1], (rows, sizes[0]))
  c = jax.random.normal(keys[2], (rows, sizes[-1]))

  def run(total):
    step = lambda i, acc: acc + jnp.vdot(relu_mlp(ws, h0 + 1e-6 * i), c)
    return jax.lax.fori_loop(0, steps, step, total)

  return rows * steps / _best_seconds(jax.jit(run), jnp.zeros(()), repeats)
