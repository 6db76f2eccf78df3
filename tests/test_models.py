"""The decoder's likelihood in its elementwise and its matrix (grid) form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vbayes import distributions, models
from vbayes.config import ModelConfig


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("masked", [False, True])
def test_matrix_form_equals_elementwise_form(likelihood, masked):
  config = ModelConfig(data_dim=12, latent_dim=2, hidden_sizes=(8,), likelihood=likelihood)
  params = models.init(jax.random.key(0), config)
  if likelihood == "gaussian":
    params["decoder_raw_scale"] = jax.random.normal(jax.random.key(1), (12,))
  x = jax.random.uniform(jax.random.key(2), (5, 12))
  if likelihood == "bernoulli":
    x = (x > 0.5).astype(jnp.float32)
  z = jax.random.normal(jax.random.key(3), (7, 2)) * 2
  mask = (jnp.arange(12) < 6).astype(jnp.float32) if masked else None
  matrix = models.log_likelihood_matrix(params, config, z, x, mask)
  elementwise = jax.vmap(lambda xx: jax.vmap(
      lambda zz: models.log_likelihood(params, config, zz, xx, mask))(z))(x)
  np.testing.assert_allclose(matrix, elementwise, rtol=1e-5, atol=1e-4)


def test_log_likelihood_is_the_bernoulli_density():
  config = ModelConfig(data_dim=12, latent_dim=2, hidden_sizes=(8,))
  params = models.init(jax.random.key(0), config)
  z, x = jnp.array([0.3, -1.0]), (jnp.arange(12) % 3 == 0).astype(jnp.float32)
  logits = models.decode(params, config, z)
  np.testing.assert_allclose(models.log_likelihood(params, config, z, x),
                             distributions.bernoulli_log_prob(logits, x), rtol=1e-6)
  top = (jnp.arange(12) < 6).astype(jnp.float32)
  np.testing.assert_allclose(models.log_likelihood(params, config, z, x, top),
                             distributions.bernoulli_log_prob(logits[:6], x[:6]), rtol=1e-6)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_log_likelihood_of_samples_is_log_likelihood_per_image_and_sample(likelihood):
  config = ModelConfig(data_dim=12, latent_dim=3, hidden_sizes=(8,), likelihood=likelihood)
  params = models.init(jax.random.key(0), config)
  x = jax.random.uniform(jax.random.key(2), (4, 12))
  if likelihood == "bernoulli":
    x = (x > 0.5).astype(jnp.float32)
  z = jax.random.normal(jax.random.key(3), (4, 5, 3))  # [B, K, L]
  got = models.log_likelihood_of_samples(params, config, z, x)
  assert got.shape == (4, 5)
  for b in range(4):
    for k in range(5):
      np.testing.assert_allclose(got[b, k], models.log_likelihood(params, config, z[b, k], x[b]),
                                 rtol=1e-6)
  # The same gradient (training differentiates it) with respect to parameters and samples.
  per_pair = lambda p, z: sum(models.log_likelihood(p, config, z[b, k], x[b])
                              for b in range(4) for k in range(5))
  batched = lambda p, z: jnp.sum(models.log_likelihood_of_samples(p, config, z, x))
  want, got = (jax.grad(f, argnums=(0, 1))(params, z) for f in (per_pair, batched))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), got, want)
