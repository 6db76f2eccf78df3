"""Two stochastic layers (Burda et al. 2016, section 5, after Rezende et al. 2014):

    p(x, z1, z2) = p(z2) p(z1 | z2) p(x | z1),      q(z1, z2 | x) = q(z1 | x) q(z2 | z1),

with p(z2) = N(0, I) and every conditional a diagonal Gaussian whose mean and log-variance
are the two halves of an MLP's output. The latent is one vector z = [z1, z2] of L1 + L2
coordinates (z1 first), so the model is an ordinary `Model` whose prior p(z) =
p(z2) p(z1 | z2) and proposal q(z | x) are `GaussianChain`s and whose decoder reads z1:
every estimator and evaluator runs on it unchanged.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from vbayes import distributions
from vbayes.models import nets
from vbayes.models.interfaces import Prior, Proposal


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GaussianChain(distributions.FromNoise):
  """u ~ first, then v | u ~ N(m(u), diag exp(s(u))) with [m, s] = net(u): the density of
  z = [u, v] (or [v, u] when `first_is_last`),

      log p(z) = log first(u) + log N(v; m(u), diag exp(s(u))).

  `first` is a DiagNormal of batch shape [...] (the encoder's q(z1 | x), or the prior's
  N(0, I) with batch shape []); net_params are the conditional's MLP, a pytree leaf of
  the distribution, so `stop_gradient` of the distribution stops every parameter of q.
  Reparameterized: z = draw(eps) is differentiable in all of them given eps ~ N(0, I).
  """
  first: distributions.DiagNormal
  net_params: dict
  net_apply: Callable = dataclasses.field(metadata={"static": True})
  second_dim: int = dataclasses.field(metadata={"static": True})
  first_is_last: bool = dataclasses.field(metadata={"static": True})

  @property
  def first_dim(self) -> int:
    return self.first.mean.shape[-1]

  def _split(self, z):
    """z [..., L1 + L2] -> (u, v), the block drawn first and the other."""
    if self.first_is_last:
      v, u = jnp.split(z, [self.second_dim], axis=-1)
    else:
      u, v = jnp.split(z, [self.first_dim], axis=-1)
    return u, v

  def _join(self, u, v):
    return jnp.concatenate([v, u] if self.first_is_last else [u, v], axis=-1)

  def _conditional(self, u) -> distributions.DiagNormal:
    mean, log_var = jnp.split(self.net_apply(self.net_params, u), 2, axis=-1)
    return distributions.DiagNormal(mean, log_var)

  def noise(self, key: jax.Array, shape=()) -> jax.Array:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return jax.random.normal(key, (*self.first.mean.shape[:-1], *shape,
                                   self.first_dim + self.second_dim), self.first.mean.dtype)

  def draw_and_log_prob(self, eps):
    """(z, log p(z)) for z = draw(eps); eps [..., *S, L1 + L2] splits as z does."""
    eps_u, eps_v = self._split(eps)
    u, log_p_u = self.first.draw_and_log_prob(eps_u)
    v, log_p_v = self._conditional(u).draw_and_log_prob(eps_v)
    return self._join(u, v), log_p_u + log_p_v

  def log_prob(self, z):
    """log first(u) + log N(v; m(u), diag exp(s(u))) for z [..., *S, L1 + L2]: [..., *S]."""
    u, v = self._split(z)
    return self.first.log_prob(u) + self._conditional(u).log_prob(v)


def two_layer_prior(net: nets.Net, dims: tuple[int, int]) -> Prior:
  """p(z1, z2) = N(z2; 0, I) N(z1; m(z2), diag exp(s(z2))), [m, s] = net(z2) (2 L1
  outputs), net's parameters under params["prior"]. dims = (L1, L2)."""
  l1, l2 = dims

  def distribution(params):
    top = distributions.DiagNormal(jnp.zeros((l2,), jnp.float32), jnp.zeros((l2,), jnp.float32))
    return GaussianChain(top, params["prior"], net.apply, second_dim=l1, first_is_last=True)

  return Prior(init=lambda key: net.init(key, l2, 2 * l1), distribution=distribution)


def two_layer_encoder(bottom: nets.Net, top: nets.Net, data_dim: int,
                      dims: tuple[int, int]) -> Proposal:
  """q(z1, z2 | x) = N(z1; mu(x), diag exp(lv(x))) N(z2; m(z1), diag exp(s(z1))):
  [mu, lv] = bottom(x), [m, s] = top(z1). Parameters {"bottom", "top"}. dims = (L1, L2)."""
  l1, l2 = dims

  def init(key):
    bottom_key, top_key = jax.random.split(key)
    return {"bottom": bottom.init(bottom_key, data_dim, 2 * l1),
            "top": top.init(top_key, l1, 2 * l2)}

  def distribution(params, x_xD):
    mean, log_var = jnp.split(bottom.apply(params["bottom"], x_xD), 2, axis=-1)
    return GaussianChain(distributions.DiagNormal(mean, log_var), params["top"], top.apply,
                         second_dim=l2, first_is_last=False)

  return Proposal(
      init=init, distribution=distribution,
      sample=lambda params, key, x_D, k: distribution(params, x_D).sample(key, k))


def reading_first(net: nets.Net, first_dim: int) -> nets.Net:
  """`net` applied to z[..., :first_dim] alone: the decoder p(x | z1) of z = [z1, z2]."""
  return nets.Net(init=lambda key, n_in, n_out: net.init(key, first_dim, n_out),
                  apply=lambda params, z: net.apply(params, z[..., :first_dim]))
