"""The VampPrior (Tomczak & Welling 2018): the encoder's posteriors at learned pseudo-inputs."""

import dataclasses
import math

import jax
import jax.numpy as jnp

from vbayes import distributions
from vbayes.errors import require
from vbayes.models.interfaces import Prior
from vbayes.parts import PriorConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(PriorConfig):
  """p(z) = (1/K) sum_k q(z | u_k), K = num_pseudo_inputs. They start at
  pseudo_input_init = (mean, sd): mean + sd * eps, eps ~ N(0, I); with
  pseudo_input_limits = (lo, hi) the prior sees them clipped to [lo, hi] (hardtanh, as
  Tomczak & Welling keep theirs in [0, 1]); () leaves them free. No closed-form KL."""
  name = "vamp"
  num_pseudo_inputs: int = 500
  pseudo_input_init: tuple[float, float] = (0.5, 0.1)
  pseudo_input_limits: tuple[float, ...] = ()

  def __post_init__(self):
    require(self.num_pseudo_inputs > 0,
            f"num_pseudo_inputs must be positive, got {self.num_pseudo_inputs}")
    require(len(self.pseudo_input_init) == 2 and self.pseudo_input_init[1] >= 0
            and all(math.isfinite(v) for v in self.pseudo_input_init),
            f"pseudo_input_init is (mean, sd >= 0), got {self.pseudo_input_init}")
    limits = self.pseudo_input_limits
    require(limits == () or (len(limits) == 2 and limits[0] < limits[1]),
            f"pseudo_input_limits is () or (lo, hi) with lo < hi, got {limits}")

  def check(self, model):
    require("diag_normal" in model.proposal.offers,
            f"the vamp prior is made of the Gaussian encoder's posteriors; it needs proposal "
            f"gaussian, got {model.proposal.name!r}")

  def build(self, model, proposal) -> Prior:
    return prior(proposal, model.data_dim, self.num_pseudo_inputs,
                 tuple(self.pseudo_input_init), tuple(self.pseudo_input_limits))


def prior(proposal, data_dim: int, num_pseudo_inputs: int,
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
