"""A linear-Gaussian latent model where everything is closed form.

    z ~ N(0, I_L),  x | z ~ N(W z + b, s^2 I_D).
    log p(x) = log N(x; b, W W^T + s^2 I)
    p(z | x) = N(S W^T (x - b) / s^2, S),  S = (I + W^T W / s^2)^{-1}

W has orthogonal columns, so S is diagonal and the exact posterior is a member
of the model's diagonal-Gaussian encoder family (a linear encoder, hidden_sizes=()).
The vbayes model with gaussian_mean="identity" and no hidden layers is exactly
this model; `params_for` writes W, b, s (and an encoder) into its parameter dict.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from vbayes.config import ModelConfig
from vbayes.models.likelihoods import gaussian
from vbayes.models.networks import mlp


@dataclasses.dataclass
class LinearGaussian:
  config: ModelConfig
  w_DxL: np.ndarray
  b_D: np.ndarray
  scale: float

  def log_marginal(self, x_BxD) -> np.ndarray:
    """log N(x; b, C), C = W W^T + s^2 I, for each row of x: [B], in float64 numpy
    (-(D log 2 pi + log det C + r^T C^-1 r) / 2 with r = x - b, by a Cholesky factor)."""
    cov = self.w_DxL @ self.w_DxL.T + self.scale**2 * np.eye(len(self.b_D))
    chol = np.linalg.cholesky(cov)
    r_BxD = np.asarray(x_BxD, np.float64) - self.b_D
    whitened = scipy.linalg.solve_triangular(chol, r_BxD.T, lower=True)  # [D, B]: L^-1 r
    log_det = 2 * np.sum(np.log(np.diag(chol)))
    return -0.5 * (len(self.b_D) * np.log(2 * np.pi) + log_det + np.sum(whitened**2, axis=0))

  def posterior(self, x_BxD):
    """Mean [B, L] and (diagonal) variance [L] of p(z | x)."""
    wtw = self.w_DxL.T @ self.w_DxL
    var_L = 1.0 / (1.0 + np.diag(wtw) / self.scale**2)
    mean = (x_BxD - self.b_D) @ self.w_DxL / self.scale**2 * var_L
    return mean, var_L

  def exact_encoder(self):
    """Encoder weights whose q(z|x) is exactly p(z|x): linear mean, constant log-variance."""
    _, var_L = self.posterior(np.zeros((1, len(self.b_D))))
    a_DxL = self.w_DxL / self.scale**2 * var_L
    latent = self.config.latent_dim
    w = np.concatenate([a_DxL, np.zeros((len(self.b_D), latent))], axis=1)
    b = np.concatenate([-self.b_D @ a_DxL, np.log(var_L)])
    return {"layer_0": {"w": w.astype(np.float32), "b": b.astype(np.float32)}}

  def params(self, encoder=None):
    """vbayes params for this model, with the exact encoder unless one is given (float32
    numpy arrays: host values, which compile nothing until a program uses them)."""
    raw_scale = np.log(np.expm1(self.scale - self.config.likelihood.min_scale))  # inverse softplus
    return {
        "encoder": self.exact_encoder() if encoder is None else encoder,
        "decoder": {"layer_0": {"w": self.w_DxL.T.astype(np.float32),
                                "b": self.b_D.astype(np.float32)}},
        "decoder_raw_scale": np.full((len(self.b_D),), raw_scale, np.float32),
    }

  def sample(self, key, n):
    """n draws x ~ p(x) [n, D], one compiled program per n."""
    return _sample(key, self.w_DxL, self.b_D, self.scale, n)


@functools.partial(jax.jit, static_argnums=4)
def _sample(key, w_DxL, b_D, scale, n):
  kz, kx = jax.random.split(key)
  z = jax.random.normal(kz, (n, w_DxL.shape[1]))
  return z @ w_DxL.T + b_D + scale * jax.random.normal(kx, (n, b_D.shape[0]))


def make(data_dim: int = 6, latent_dim: int = 2, scale: float = 0.5, seed: int = 0):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(data_dim, latent_dim)))
  w = q * np.linspace(1.5, 0.8, latent_dim)  # orthogonal columns, distinct lengths
  config = ModelConfig(data_dim=data_dim, latent_dim=latent_dim,
                       network=mlp.Config(hidden_sizes=()),
                       likelihood=gaussian.Config(gaussian_mean="identity", min_scale=1e-3))
  return LinearGaussian(config=config, w_DxL=w, b_D=rng.normal(size=data_dim) * 0.3, scale=scale)


def perturbed_encoder(model: LinearGaussian, shift: float = 0.3, widen: float = 0.7):
  """An encoder near, but not at, the exact posterior: means scaled by 0.9 and shifted,
  variances multiplied by exp(widen) (wider than the posterior, so importance
  weights stay bounded)."""
  enc = jax.tree.map(jnp.asarray, model.exact_encoder()["layer_0"])
  latent = model.config.latent_dim
  w = enc["w"].at[:, :latent].multiply(0.9)
  b = enc["b"].at[:latent].add(shift).at[latent:].add(widen)
  return {"layer_0": {"w": w, "b": b}}
