"""Priors p(z) over the latent space.

A `Prior` is (init, distribution): `init(key)` gives its parameters (None for a
fixed prior; a learned one's are kept under params["prior"]), and
`distribution(params)`, given the model's parameters, the distribution itself, with
`sample(key, shape)` and `log_prob(z)` (see vbayes.distributions for the shape
convention). A prior may read any part of the model's parameters: the VampPrior's
components are the encoder's q(z | u) at its learned pseudo-inputs u.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from vbayes import distributions


class Prior(NamedTuple):
  init: Callable[[jax.Array], Any]
  distribution: Callable[[Any], Any]


def standard_normal(latent_dim: int) -> Prior:
  """p(z) = N(0, I_L), no parameters."""
  dist = distributions.StdNormal(latent_dim)
  return Prior(init=lambda key: None, distribution=lambda params: dist)


def vamp(proposal, data_dim: int, num_pseudo_inputs: int,
         init: tuple[float, float] = (0.5, 0.1), limits: tuple[float, ...] = ()) -> Prior:
  """The VampPrior (Tomczak & Welling 2018): p(z) = (1/K) sum_k q(z | u_k), the mixture
  of the encoder's posteriors at K learned pseudo-inputs u_k, trained with the rest of
  the model. `proposal` is the model's Gaussian encoder (vbayes.models.proposals), whose
  parameters it shares. The parameters params["prior"]["pseudo_inputs"] [K, D] start at
  init = (mean, sd): mean + sd * eps, eps ~ N(0, I) (the default, mid-grey images with
  noise; Tomczak & Welling start theirs at (0.05, 0.01)); with limits (lo, hi) the
  prior's u_k are those parameters clipped to [lo, hi] (a hardtanh: Tomczak & Welling's
  [0, 1], images), otherwise the parameters themselves.
  """
  mean, sd = init

  def init_params(key):
    return {"pseudo_inputs": mean + sd * jax.random.normal(key, (num_pseudo_inputs, data_dim))}

  def distribution(params):
    u_KxD = params["prior"]["pseudo_inputs"]
    if limits:
      u_KxD = jnp.clip(u_KxD, *limits)
    q = proposal.distribution(params["encoder"], u_KxD)
    return distributions.DiagNormalMixture(q.mean, q.log_var)

  return Prior(init=init_params, distribution=distribution)
