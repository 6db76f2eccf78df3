"""Proposals q(z | x): the encoders that estimators draw latent samples from.

A `Proposal` is (init, distribution, sample):
  init(key) -> params                       kept under params["encoder"]
  distribution(params, x [..., D])          q(z | x) with batch shape [...]: `draw`, `noise`,
                                            `sample`, `log_prob` (vbayes.distributions), or
                                            None for an implicit encoder, which has no density
  sample(params, key, x_D, k) -> z [k, L]   k draws for one image

A Gaussian encoder's q is reparameterized (`DiagNormal.draw`), so objectives can
take path derivatives through z. An implicit encoder (AVB) only samples.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from vbayes import distributions
from vbayes.models import nets


class Proposal(NamedTuple):
  init: Callable[[jax.Array], Any]
  distribution: Callable[[Any, jax.Array], Any] | None
  sample: Callable[[Any, jax.Array, jax.Array, int], jax.Array]


def gaussian_encoder(net: nets.Net, data_dim: int, latent_dim: int,
                     log_var_limits: tuple[float, ...] = ()) -> Proposal:
  """q(z | x) = N(mu(x), diag exp(log_var(x))), [mu, log_var] = net(x) (2L outputs);
  with log_var_limits (lo, hi), log_var = clip(net's output, lo, hi) (a hardtanh)."""

  def distribution(params, x_xD):
    mean, log_var = jnp.split(net.apply(params, x_xD), 2, axis=-1)
    if log_var_limits:
      log_var = jnp.clip(log_var, *log_var_limits)
    return distributions.DiagNormal(mean, log_var)

  return Proposal(init=lambda key: net.init(key, data_dim, 2 * latent_dim),
                  distribution=distribution,
                  sample=lambda params, key, x_D, k: distribution(params, x_D).sample(key, k))


def implicit_encoder(hidden_sizes: tuple[int, ...], activation: str, data_dim: int,
                     latent_dim: int, noise_dim: int) -> Proposal:
  """z = g(x, eps), eps ~ N(0, I_E): an MLP fed [x, eps] (D + E inputs), L outputs.

  Sampling k draws of one image computes the first layer's
  [x, eps] W = x W_x + eps W_eps with x W_x once, not k times.
  """
  sizes = (data_dim + noise_dim, *hidden_sizes, latent_dim)

  def sample(params, key, x_D, k):
    eps_KxE = jax.random.normal(key, (k, noise_dim))
    first = params["layer_0"]
    h_KxH = (x_D @ first["w"][:data_dim] + first["b"]) + eps_KxE @ first["w"][data_dim:]
    act = nets.ACTIVATIONS[activation]
    for i in range(1, len(params)):
      layer = params[f"layer_{i}"]
      h_KxH = act(h_KxH) @ layer["w"] + layer["b"]
    return h_KxH

  return Proposal(init=lambda key: nets.mlp_init(key, sizes), distribution=None, sample=sample)
