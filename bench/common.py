"""Shared by the benchmarks: timers for the machine's float32 matmul peak, for
vbayes' training chunk and for ceilings (the same networks' matmuls with (almost)
nothing else), FLOP counts, and `rates`, which times a group of them in turn.

A timer is a jitted `run(state) -> state` with its first state and the work one
call does (steps, rows or FLOPs). `rates` takes each group's calls round-robin,
so that a slow spell of the machine (a shared 2-core VM drifts by 5-10% over
tens of seconds) falls on every member of the group alike, and a rate and the
peak or ceiling it is compared with are measured in the same seconds.
"""

import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


class Shapes(NamedTuple):
  """The benchmarked VAE: an MLP encoder (its last layer gives means and
  log-variances) and decoder, and the batch."""
  encoder: tuple[int, ...]
  decoder: tuple[int, ...]
  batch: int

  @property
  def hidden_sizes(self) -> tuple[int, ...]:
    return self.encoder[1:-1]

  @property
  def latent_dim(self) -> int:
    return self.decoder[0]


VAE = Shapes(encoder=(784, 500, 500, 100), decoder=(50, 500, 500, 784), batch=100)
# --smoke: every code path of a benchmark in seconds; its numbers mean nothing.
SMOKE = Shapes(encoder=(784, 32, 8), decoder=(4, 32, 784), batch=10)
SMOKE_PEAK_SIZES = (64, 128)


class Timer(NamedTuple):
  run: Callable[[Any], Any]  # state -> state; jitted, state donated where it can be
  state: Any
  work: float  # per call: steps, rows or FLOPs


def significant(x: float, digits: int = 3) -> float:
  """x to `digits` significant figures (a small rate or fraction keeps its digits, where a
  fixed number of decimals would print 0.0)."""
  return float(f"{x:.{digits}g}")


def rates(timers: dict[str, Timer], calls: int) -> dict[str, float]:
  """Best work per second of each timer over `calls` timed calls, after one untimed
  call each (compilation); the timers' calls are taken in turn, round-robin."""
  states = {name: jax.block_until_ready(t.run(t.state)) for name, t in timers.items()}
  best = dict.fromkeys(timers, float("inf"))
  for _ in range(calls):
    for name, t in timers.items():
      start = time.perf_counter()
      states[name] = jax.block_until_ready(t.run(states[name]))
      best[name] = min(best[name], time.perf_counter() - start)
  return {name: timers[name].work / best[name] for name in timers}


def peak_timers(sizes=(1024, 2048), chain: int = 8) -> dict[str, Timer]:
  """Chained n x n float32 matmuls inside one jit (no dispatch cost); work in FLOPs.

  Each product depends on the previous one, so none can be skipped or hoisted.
  The matrix is handed back (donated, so not copied) for the next call.
  """
  def timer(n):
    a = jax.random.normal(jax.random.key(n), (n, n), jnp.float32) / n
    def run(state):
      m, _ = state
      return m, jax.lax.fori_loop(0, chain, lambda _, c: c @ m, m)
    return Timer(jax.jit(run, donate_argnums=0), (a, jnp.zeros_like(a)), 2.0 * n**3 * chain)
  return {f"peak_{n}": timer(n) for n in sizes}


def peak_gflops(group_rates: dict[str, float]) -> float:
  """The best GFLOP/s of a group's `peak_timers`."""
  return max(r for name, r in group_rates.items() if name.startswith("peak_")) / 1e9


def training_timer(config, images, steps_per_epoch: int, training_step=None) -> Timer:
  """vbayes' training chunk for `config`, state donated from call to call as in a
  real run; work in steps. training_step: vbayes.training.step, or another version's (A/B)."""
  if training_step is None:
    from vbayes.training import step as training_step
  chunk = training_step.make_train_chunk(
      training_step.make_update(config, steps_per_epoch=steps_per_epoch),
      batch_size=config.batch_size,
      steps_per_call=config.steps_per_call, steps_per_epoch=steps_per_epoch,
      binarization="fixed")
  keys = jax.random.key(1), jax.random.key(2)
  return Timer(lambda state: chunk(state, images, *keys)[0],
               training_step.init_state(jax.random.key(0), config), config.steps_per_call)


_NHWC = ("NHWC", "HWIO", "NHWC")
# lax's 3x3 convolutions of stride 2, as flax's nn.Conv and nn.ConvTranspose call them,
# differentiated by XLA: the reference for vbayes.models.conv_nets'. {transposed: conv}.
LAX_CONVS = {
    False: lambda x, k: jax.lax.conv_general_dilated(x, k, (2, 2), "SAME",
                                                     dimension_numbers=_NHWC),
    True: lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=_NHWC),
}


def xla_flops(fn, *args, **static) -> float:
  """XLA's count of every FLOP of jit(fn)(*args), from the compiled program's cost analysis."""
  analysis = jax.jit(fn, static_argnames=tuple(static)).lower(*args, **static).compile()
  analysis = analysis.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  return float(analysis["flops"])


def xla_update_flops(config) -> float:
  """XLA's count of every FLOP (matmuls, convolutions and elementwise work) of one
  training update of `config`, from the compiled program's cost analysis."""
  from vbayes.training import step as training_step
  state = training_step.init_state(jax.random.key(0), config)
  x = jnp.zeros((config.batch_size, config.model.data_dim), jnp.float32)
  return xla_flops(training_step.make_update(config, steps_per_epoch=1), state["params"],
                   state["opt_state"], state["step"], jax.random.key(1), x)


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


def matmul_ceiling_timer(encoder_sizes: tuple[int, ...], decoder_sizes: tuple[int, ...],
                         batch: int, k: int = 1, steps: int = 200,
                         adam: bool = False) -> Timer:
  """The same network's matmuls with nearly nothing else: a ceiling; work in steps.

  The encoder and decoder are bias-free ReLU MLPs of the given sizes, wired as in
  the VAE: the decoder's B*k input rows depend on the encoder's output, so its
  input gradient is taken. The loss is sum(c * relu(output)) for fixed random c
  (nonlinear in the output, so XLA cannot fold the last product into the loss)
  and the update is plain SGD: a step is the matmuls of `mlp_train_flops` plus
  ReLU masks and one pass over the parameters, with no likelihood, KL, sampling,
  Adam or metrics. With adam=True the update is optax.adam instead: the ceiling
  of any Adam-trained step of these shapes. `steps` steps run in a fori_loop
  inside one jit, state donated.
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
  return Timer(jax.jit(run, donate_argnums=0), (params, optimizer.init(params)), steps)


def forward_ceiling_timer(sizes: tuple[int, ...], rows: int, steps: int = 50) -> Timer:
  """Forward passes of a bias-free ReLU MLP (`relu_mlp`) on [rows, sizes[0]] blocks:
  the matmuls of evaluation with nothing else (no likelihood, sampling or
  log-sum-exp); work in rows. Each step's input differs, and its output is
  reduced to a scalar.
  """
  keys = jax.random.split(jax.random.key(0), 3)
  ws = _random_weights(keys[0], sizes)
  h0 = jax.random.normal(keys[1], (rows, sizes[0]))
  c = jax.random.normal(keys[2], (rows, sizes[-1]))

  def run(total):
    step = lambda i, acc: acc + jnp.vdot(relu_mlp(ws, h0 + 1e-6 * i), c)
    return jax.lax.fori_loop(0, steps, step, total)

  return Timer(jax.jit(run), jnp.zeros(()), rows * steps)


def handwritten_vae_timer(shapes: Shapes, images, steps: int, steps_per_epoch: int,
                          k: int = 1) -> Timer:
  """A VAE (k=1: the ELBO with analytic KL) or IWAE-k training step written directly in
  JAX, with none of vbayes: the reference vbayes' own step is held against. Work in steps.

  The same model and the same work as vbayes' step: ReLU MLPs with biases (the
  encoder's last layer gives means and log-variances), q = N(mu, diag sigma^2), prior
  N(0, I), Bernoulli decoder on logits (its sum_d x_d l_d contracted, not broadcast
  over the k samples), Adam 1e-3 (optax); each call shuffles the device-resident
  images and takes `steps` batches from that order in a lax.scan, noise from
  fold_in(key, step), the loss of every step returned; state donated.
    ELBO:  log p(x|z) - KL(q || p),  z = mu + sigma eps
    IWAE:  log (1/k) sum_i p(x, z_i) / q(z_i|x)
  """
  encoder, decoder, batch = shapes
  latent = decoder[0]
  keys = iter(jax.random.split(jax.random.key(0), 16))

  def dense(sizes):
    return [(_random_weights(next(keys), (m, n))[0], jnp.zeros(n))
            for m, n in zip(sizes[:-1], sizes[1:])]

  def mlp(layers, h):
    for i, (w, b) in enumerate(layers):
      h = h @ w + b
      if i < len(layers) - 1:
        h = jax.nn.relu(h)
    return h

  def loss(params, key, x_BxD):
    out = mlp(params["encoder"], x_BxD)
    mu, log_var = out[:, :latent], out[:, latent:]
    sigma = jnp.exp(0.5 * log_var)
    if k == 1:
      z = mu + sigma * jax.random.normal(key, mu.shape)
      logits = mlp(params["decoder"], z)  # log p(x|z) = sum_d x_d l_d - log(1 + e^{l_d})
      log_px_z = jnp.sum(x_BxD * logits - jax.nn.softplus(logits), axis=-1)
      kl = 0.5 * jnp.sum(mu**2 + sigma**2 - 1.0 - log_var, axis=-1)
      return -jnp.mean(log_px_z - kl)
    eps = jax.random.normal(key, (batch, k, latent))
    z = mu[:, None] + sigma[:, None] * eps
    logits = mlp(params["decoder"], z)
    log_px_z = (jnp.einsum("bd,bkd->bk", x_BxD, logits)
                - jnp.sum(jax.nn.softplus(logits), axis=-1))
    log_pz = -0.5 * jnp.sum(z**2, axis=-1)  # the 2 pi terms of p and q cancel
    log_qz = -0.5 * jnp.sum(eps**2 + log_var[:, None], axis=-1)
    log_w = log_px_z + log_pz - log_qz
    return -jnp.mean(jax.nn.logsumexp(log_w, axis=1) - jnp.log(k))

  optimizer = optax.adam(1e-3)
  params = {"encoder": dense(encoder), "decoder": dense(decoder)}
  train_key, data_key = jax.random.key(1), jax.random.key(2)

  def run(state):
    params, opt_state, t0 = state
    order = jax.random.permutation(jax.random.fold_in(data_key, t0 // steps_per_epoch),
                                   images.shape[0])
    offset = (t0 % steps_per_epoch) * batch

    def step(carry, i):
      params, opt_state = carry
      x = images[jax.lax.dynamic_slice_in_dim(order, offset + i * batch, batch)]
      value, grads = jax.value_and_grad(loss)(params, jax.random.fold_in(train_key, t0 + i),
                                              x.astype(jnp.float32))
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), value

    (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), jnp.arange(steps))
    return params, opt_state, t0 + steps

  state = (params, optimizer.init(params), jnp.zeros((), jnp.int32))
  return Timer(jax.jit(run, donate_argnums=0), state, steps)
