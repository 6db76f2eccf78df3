"""The protocols every part of a model implements (vbayes.models.vae.Model composes them).

Prior(init, distribution)
  init(key) -> params (None for a fixed prior; a learned one's are kept under
  params["prior"]); distribution(params) -> p(z), given the model's parameters, with
  `sample(key, shape)` and `log_prob(z)` (vbayes.distributions' shape convention). A
  prior may read any part of the model's parameters: the VampPrior's components are the
  encoder's q(z | u) at its learned pseudo-inputs u.

Proposal(init, distribution, sample)
  init(key) -> params                       kept under params["encoder"]
  distribution(params, x [..., D])          q(z | x) with batch shape [...]: `draw`, `noise`,
                                            `sample`, `log_prob` (vbayes.distributions), or
                                            None for an implicit encoder, which has no density
  sample(params, key, x_D, k) -> z [k, L]   k draws for one image

Likelihood: log p(x | z) in the three forms the estimators need, each from the
decoder outputs, plus the mean and a sample:
  log_prob(lp, out_D, x_D, mask_D=None)      one image, one z; mask_D (0/1) keeps the
                                             observed pixels: log p(x_obs | z)
  log_prob_of_samples(lp, out_BxKxD, x_BxD)  [B, K]: K samples of each of B images
  log_prob_matrix(lp, out_GxD, x_BxD, mask_D)  [B, G]: every image against every z_g
  mean(lp, out), sample(lp, key, out)        E[x | z] and x ~ p(x | z)
`lp` is the likelihood's parameters, kept under params[param_key] (None when it
has none). entries_per_pair(D): floats `log_prob_matrix` holds per (image, z)
pair, for callers that bound its memory.
"""

from typing import Any, Callable, NamedTuple

import jax


class Prior(NamedTuple):
  init: Callable[[jax.Array], Any]
  distribution: Callable[[Any], Any]


class Proposal(NamedTuple):
  init: Callable[[jax.Array], Any]
  distribution: Callable[[Any, jax.Array], Any] | None
  sample: Callable[[Any, jax.Array, jax.Array, int], jax.Array]


class Likelihood(NamedTuple):
  param_key: str | None
  init: Callable[[int], Any]
  log_prob: Callable
  log_prob_of_samples: Callable
  log_prob_matrix: Callable
  mean: Callable
  sample: Callable
  entries_per_pair: Callable[[int], int]


def from_log_prob(log_prob: Callable, mean: Callable, sample: Callable,
                  param_key: str | None = None, init: Callable[[int], Any] = lambda d: None
                  ) -> Likelihood:
  """A likelihood from its one-image density log_prob(lp, out_D, x_D, mask_D=None).

  The batched and matrix forms are that density vmapped over samples and images:
  correct for any density, but without the contractions the Bernoulli and Gaussian likelihoods
  use for speed. A new likelihood can start here and specialize later.
  """
  per_sample = jax.vmap(log_prob, in_axes=(None, 0, None))  # [K] for one image

  def log_prob_of_samples(lp, out_BxKxD, x_BxD):
    return jax.vmap(per_sample, in_axes=(None, 0, 0))(lp, out_BxKxD, x_BxD)

  def log_prob_matrix(lp, out_GxD, x_BxD, mask_D=None):
    one = lambda out_D, x_D: log_prob(lp, out_D, x_D, mask_D)
    return jax.vmap(lambda x_D: jax.vmap(lambda out_D: one(out_D, x_D))(out_GxD))(x_BxD)

  return Likelihood(param_key=param_key, init=init, log_prob=log_prob,
                    log_prob_of_samples=log_prob_of_samples, log_prob_matrix=log_prob_matrix,
                    mean=mean, sample=sample, entries_per_pair=lambda data_dim: data_dim)
