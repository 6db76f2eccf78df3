"""Two stochastic layers (Burda et al. 2016): p(z1, z2) = N(z2; 0, I) p(z1 | z2).

The latent z = [z1, z2] has latent_dim + latent_dim_2 coordinates; the decoder reads
z1, and the Gaussian proposal becomes q(z1 | x) q(z2 | z1) (vbayes.models.hierarchical).
"""

import dataclasses

from vbayes.errors import require
from vbayes.models import hierarchical, nets
from vbayes.models.interfaces import Prior
from vbayes.parts import PriorConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(PriorConfig):
  """latent_dim_2: units of z2 (z1 has the model's latent_dim); the conditionals
  p(z1 | z2) and q(z2 | z1) are MLPs of hidden_sizes_2 with `activation`. Burda et al.'s
  model: latent_dim 100, latent_dim_2 50, hidden_sizes_2 (100, 100), activation tanh."""
  name = "two_layer"
  latent_dim_2: int = 50
  hidden_sizes_2: tuple[int, ...] = (100, 100)
  activation: str = "relu"

  def __post_init__(self):
    require(self.latent_dim_2 > 0, f"latent_dim_2 must be positive, got {self.latent_dim_2}")
    require(all(h > 0 for h in self.hidden_sizes_2),
            f"hidden_sizes_2 must all be positive, got {self.hidden_sizes_2}")
    require(self.activation in nets.ACTIVATIONS,
            f"activation must be one of {tuple(nets.ACTIVATIONS)}, got {self.activation!r}")

  def latent_layers(self, latent_dim: int) -> tuple[int, ...]:
    return (latent_dim, self.latent_dim_2)

  def between(self) -> nets.Net:
    """The MLP of p(z1 | z2) (and, with other weights, of q(z2 | z1))."""
    return nets.mlp(tuple(self.hidden_sizes_2), self.activation)

  def build(self, model, proposal) -> Prior:
    del proposal
    return hierarchical.two_layer_prior(self.between(), model.latent_layers)
