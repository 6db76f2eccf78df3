"""Binary pixels: p(x | z) = prod_d Bernoulli(x_d; sigmoid(f_d(z))), f the decoder's logits."""

import dataclasses

import jax
import jax.numpy as jnp

from vbayes import distributions, precision
from vbayes.models.interfaces import Likelihood
from vbayes.numerics import softplus
from vbayes.parts import LikelihoodConfig

_dot = precision.matmul_highest


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(LikelihoodConfig):
  """No settings: the decoder's outputs are the logits."""
  name = "bernoulli"
  pixels = "binary"

  def build(self, model) -> Likelihood:
    del model
    return likelihood()


def likelihood() -> Likelihood:
  """p(x | z) = prod_d Bernoulli(x_d; sigmoid(l_d)), l = f(z) the logits.

  log p(x | z) = sum_d x_d l_d - softplus(l_d). For K samples of B images the
  first sum is a contraction of l_BxKxD with x_BxD, so x is never copied to each
  sample; against G latent points both sums are matrix products, run at full
  float32 precision on every backend (they add hundreds of terms of size ~10,
  where bfloat16 passes, a TPU's default for products, would cost nats).
  """

  def log_prob_of_samples(lp, out_BxKxD, x_BxD):
    del lp
    return jnp.einsum("bkd,bd->bk", out_BxKxD, x_BxD) - jnp.sum(softplus(out_BxKxD), axis=-1)

  def log_prob_matrix(lp, out_GxD, x_BxD, mask_D=None):
    del lp
    mask_D = jnp.ones(x_BxD.shape[-1:], x_BxD.dtype) if mask_D is None else mask_D
    return _dot(x_BxD * mask_D, out_GxD.T) - _dot(softplus(out_GxD), mask_D)[None, :]

  def sample(lp, key, out):
    mean = jax.nn.sigmoid(out)
    return jax.random.bernoulli(key, mean).astype(mean.dtype)

  return Likelihood(
      param_key=None, init=lambda data_dim: None,
      log_prob=lambda lp, out_D, x_D, mask_D=None: distributions.bernoulli_log_prob(
          out_D, x_D, mask_D),
      log_prob_of_samples=log_prob_of_samples, log_prob_matrix=log_prob_matrix,
      mean=lambda lp, out: jax.nn.sigmoid(out), sample=sample,
      entries_per_pair=lambda data_dim: 1)
