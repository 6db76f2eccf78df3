"""The inverse autoregressive flow posterior (Kingma et al. 2016):

    z_0 = mu(x) + sigma(x) * eps,                        eps ~ N(0, I),
    z_t = g_t * z_{t-1} + (1 - g_t) * m_t,               t = 1..T,
    [m_t, s_t] = MADE_t(z_{t-1}, h(x)),  g_t = sigmoid(s_t),
    log q(z_T | x) = log N(eps; 0, I) - sum_l log sigma_l - sum_t sum_l log g_{t,l},

where MADE_t (Germain et al. 2015) is an MLP whose weights are masked so that m_{t,l} and
s_{t,l} depend only on the coordinates of z_{t-1} before l in the step's order (reversed
from one step to the next), and on the context h(x), which the encoder outputs beside
[mu, log sigma^2] and which enters the first hidden layer and, through a dense map of its
own, every output: the first coordinate in a step's order depends on no coordinate of
z_{t-1}, so without that map its m and s would be constants. The Jacobian of each step is
triangular with diagonal g_t, hence the log-determinant above.

Drawing is one pass. The density of an arbitrary z (which STL and DReG need: log q at z
with q's parameters held) inverts each step, coordinate by coordinate: the fixed point
z_{t-1} = (z_t - (1 - g_t) m_t) / g_t, iterated L times, which is exact after L
iterations because coordinate l of the update depends only on coordinates before l.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from vbayes import distributions
from vbayes.models import nets
from vbayes.models.interfaces import Proposal

# The gate's bias at initialization: g = sigmoid(1) = 0.73 keeps most of z_{t-1}.
GATE_BIAS = 1.0


def made_masks(dim: int, hidden_sizes: tuple[int, ...], reverse: bool) -> tuple[np.ndarray, ...]:
  """The 0/1 masks of MADE's layers for inputs in the order 1..L (L..1 if reverse).

  Degrees: input l has its position d(l) in the order; hidden unit j of every layer
  has (j mod max(L - 1, 1)) + 1; each output pair (m_l, s_l) has d(l). A hidden unit
  sees units of degree <= its own; an output sees hidden units of degree < its own, so
  output l depends only on inputs before l. Masks [fan_in, fan_out], the last one for
  the 2L outputs [m, s].
  """
  degree_in = np.arange(1, dim + 1)
  if reverse:
    degree_in = degree_in[::-1]
  degrees = [degree_in] + [np.arange(h) % max(dim - 1, 1) + 1 for h in hidden_sizes]
  masks = [(d_out[None, :] >= d_in[:, None]).astype(np.float32)
           for d_in, d_out in zip(degrees[:-1], degrees[1:])]
  out = np.concatenate([degree_in, degree_in])
  masks.append((out[None, :] > degrees[-1][:, None]).astype(np.float32))
  return tuple(masks)


def made_apply(params: dict, masks, z_xL, context_xH, activation: str):
  """[m, s] = MADE(z, h) + h C: masked dense layers, h added to the first hidden layer's
  pre-activation, and h's own unmasked map C (params["context"], [H, 2L]) added to the
  outputs (h does not depend on z, so the order is kept). Returns (m, s), each [..., L]."""
  act = nets.ACTIVATIONS[activation]
  h = z_xL
  for i, mask in enumerate(masks):
    layer = params[f"layer_{i}"]
    h = h @ (layer["w"] * mask) + layer["b"]
    if i == 0:
      h = h + context_xH
    if i < len(masks) - 1:
      h = act(h)
  h = h + context_xH @ params["context"]
  m, s = jnp.split(h, 2, axis=-1)
  return m, s


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class IAFNormal(distributions.FromNoise):
  """q(z | x): a DiagNormal `base` (batch shape [...]) followed by T IAF steps whose
  MADE parameters are `steps` ({"step_0", "step_1", ...}) with context [..., H]. Reparameterized;
  the parameters are pytree leaves, so stop_gradient of it holds all of q's."""
  base: distributions.DiagNormal
  context: jax.Array
  steps: dict
  hidden_sizes: tuple = dataclasses.field(metadata={"static": True})
  activation: str = dataclasses.field(metadata={"static": True})

  @property
  def dim(self) -> int:
    return self.base.mean.shape[-1]

  def _step(self, t, z, context):
    masks = made_masks(self.dim, self.hidden_sizes, reverse=t % 2 == 1)
    m, s = made_apply(self.steps[f"step_{t}"], masks, z, context, self.activation)
    return m, s

  def _context_for(self, z):
    extra = z.ndim - self.base.mean.ndim
    return self.context.reshape(self.context.shape[:-1] + (1,) * extra
                                + self.context.shape[-1:])

  def noise(self, key: jax.Array, shape=()) -> jax.Array:
    return self.base.noise(key, shape)

  def draw_and_log_prob(self, eps):
    """(z_T, log q(z_T)) from eps [..., *S, L] in one forward pass."""
    z, log_q = self.base.draw_and_log_prob(eps)
    context = self._context_for(eps)
    for t in range(len(self.steps)):
      m, s = self._step(t, z, context)
      gate = jax.nn.sigmoid(s)
      z = gate * z + (1.0 - gate) * m
      log_q = log_q - jnp.sum(jax.nn.log_sigmoid(s), axis=-1)
    return z, log_q

  def log_prob(self, z):
    """log q(z) for any z [..., *S, L]: each step inverted (L fixed-point iterations),
    log q_0(z_0) - sum_t sum_l log g_{t,l}(z_{t-1})."""
    context = self._context_for(z)
    log_det = jnp.zeros(z.shape[:-1], z.dtype)
    for t in reversed(range(len(self.steps))):
      def invert(_, previous, z_t=z, t=t):
        m, s = self._step(t, previous, context)
        gate = jax.nn.sigmoid(s)
        return (z_t - (1.0 - gate) * m) / gate
      z_previous = jax.lax.fori_loop(0, self.dim, invert, z)
      _, s = self._step(t, z_previous, context)
      log_det = log_det + jnp.sum(jax.nn.log_sigmoid(s), axis=-1)
      z = z_previous
    return self.base.log_prob(z) - log_det


def iaf_encoder(net: nets.Net, data_dim: int, latent_dim: int, num_steps: int,
                hidden_sizes: tuple[int, ...], activation: str) -> Proposal:
  """q(z | x): [mu, log sigma^2, h] = net(x) (2L + H outputs, H = hidden_sizes[0]),
  then `num_steps` IAF steps, each a MADE with `hidden_sizes` (its own weights).
  Parameters {"net", "steps"}; each step's gate bias starts at GATE_BIAS and its map
  from the context to the outputs ("context") at zero."""
  hidden_sizes = tuple(hidden_sizes)
  context_dim = hidden_sizes[0]

  def init(key):
    net_key, *step_keys = jax.random.split(key, num_steps + 1)
    steps = {}
    for t, step_key in enumerate(step_keys):
      step = nets.mlp_init(step_key, (latent_dim, *hidden_sizes, 2 * latent_dim))
      last = step[f"layer_{len(hidden_sizes)}"]
      last["b"] = last["b"].at[latent_dim:].set(GATE_BIAS)
      step["context"] = jnp.zeros((context_dim, 2 * latent_dim), jnp.float32)
      steps[f"step_{t}"] = step
    return {"net": net.init(net_key, data_dim, 2 * latent_dim + context_dim), "steps": steps}

  def distribution(params, x_xD):
    out = net.apply(params["net"], x_xD)
    mean, log_var, context = jnp.split(out, [latent_dim, 2 * latent_dim], axis=-1)
    return IAFNormal(distributions.DiagNormal(mean, log_var), context, params["steps"],
                     hidden_sizes=hidden_sizes, activation=activation)

  return Proposal(
      init=init, distribution=distribution,
      sample=lambda params, key, x_D, k: distribution(params, x_D).sample(key, k))
