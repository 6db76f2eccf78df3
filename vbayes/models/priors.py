"""Priors p(z) over the latent space.

A `Prior` is (init, distribution): `init(key)` gives its parameters (None for a
fixed prior; a learned one keeps them under params["prior"]), and
`distribution(prior_params)` the distribution itself, with `sample(key, shape)`
and `log_prob(z)` (see vbayes.distributions for the shape convention).
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
