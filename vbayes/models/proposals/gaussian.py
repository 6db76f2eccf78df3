"""The Gaussian encoder q(z | x) = N(mu(x), diag sigma^2(x)), reparameterized.

Under a prior of two stochastic layers it is q(z1 | x) q(z2 | z1), each factor such a
Gaussian (vbayes.models.hierarchical), the second through the prior's MLP shape.
"""

import dataclasses

import jax.numpy as jnp

from vbayes import distributions
from vbayes.errors import require
from vbayes.models import hierarchical, nets
from vbayes.models.interfaces import Proposal
from vbayes.parts import ProposalConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(ProposalConfig):
  """log_var_limits = (lo, hi) clips the log-variance to [lo, hi] (Tomczak & Welling's
  [-6, 2]); () leaves it free."""
  name = "gaussian"
  offers = frozenset({"density", "reparameterized", "diag_normal"})
  log_var_limits: tuple[float, ...] = ()

  def __post_init__(self):
    limits = self.log_var_limits
    require(limits == () or (len(limits) == 2 and limits[0] < limits[1]),
            f"log_var_limits is () or (lo, hi) with lo < hi, got {limits}")

  def check(self, model):
    require(not self.log_var_limits or len(model.latent_layers) == 1,
            "log_var_limits clip the one-layer Gaussian encoder's log-variance; use "
            "log_var_limits () with two stochastic layers")

  def build(self, model, encoder_net: nets.Net) -> Proposal:
    layers = model.latent_layers
    if len(layers) > 1:
      return hierarchical.two_layer_encoder(encoder_net, model.prior.between(), model.data_dim,
                                            layers)
    return encoder(encoder_net, model.data_dim, model.latent_dim, tuple(self.log_var_limits))


def encoder(net: nets.Net, data_dim: int, latent_dim: int,
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
