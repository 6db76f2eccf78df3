"""The implicit encoder of adversarial variational Bayes: z = g(x, eps), draws without a density."""

import dataclasses

import jax

from vbayes.errors import require
from vbayes.models import nets
from vbayes.models.interfaces import Proposal
from vbayes.parts import ProposalConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(ProposalConfig):
  """g is an MLP of hidden_sizes with `activation`, fed x and noise_dim noise inputs
  (0: the latent dimension)."""
  name = "implicit"
  offers = frozenset({"reparameterized", "implicit"})
  hidden_sizes: tuple[int, ...] = (500, 500)
  activation: str = "relu"
  noise_dim: int = 0

  def __post_init__(self):
    require(all(h > 0 for h in self.hidden_sizes),
            f"hidden_sizes must all be positive, got {self.hidden_sizes}")
    require(self.activation in nets.ACTIVATIONS,
            f"activation must be one of {tuple(nets.ACTIVATIONS)}, got {self.activation!r}")
    require(self.noise_dim >= 0, f"noise_dim must be >= 0, got {self.noise_dim}")

  def check(self, model):
    require(len(model.latent_layers) == 1,
            "the implicit encoder has one stochastic layer; use another prior than "
            f"{model.prior.name!r}")

  def build(self, model, encoder_net) -> Proposal:
    del encoder_net  # its own MLP, fed the noise too
    return encoder(tuple(self.hidden_sizes), self.activation, model.data_dim,
                   model.latent_dim, self.noise_dim or model.latent_dim)


def encoder(hidden_sizes: tuple[int, ...], activation: str, data_dim: int,
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
