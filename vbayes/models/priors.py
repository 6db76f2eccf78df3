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

from vbayes import distributions


class Prior(NamedTuple):
  init: Callable[[jax.Array], Any]
  distribution: Callable[[Any], Any]


def standard_normal(latent_dim: int) -> Prior:
  """p(z) = N(0, I_L), no parameters."""
  dist = distributions.StdNormal(latent_dim)
  return Prior(init=lambda key: None, distribution=lambda params: dist)


def vamp(proposal, data_dim: int, num_pseudo_inputs: int) -> Prior:
  """The VampPrior (Tomczak & Welling 2018): p(z) = (1/K) sum_k q(z | u_k), the mixture
  of the encoder's posteriors at K learned pseudo-inputs u_k (params["prior"]
  ["pseudo_inputs"], [K, D]), trained with the rest of the model. `proposal` is the
  model's Gaussian encoder (vbayes.models.proposals), whose parameters it shares.
  The pseudo-inputs start at 0.5 + 0.1 eps, eps ~ N(0, I): mid-grey images with noise.
  """

  def init(key):
    return {"pseudo_inputs": 0.5 + 0.1 * jax.random.normal(key, (num_pseudo_inputs, data_dim))}

  def distribution(params):
    q = proposal.distribution(params["encoder"], params["prior"]["pseudo_inputs"])
    return distributions.DiagNormalMixture(q.mean, q.log_var)

  return Prior(init=init, distribution=distribution)
