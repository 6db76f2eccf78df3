"""The decoder's likelihood in its elementwise and its matrix (grid) form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vbayes import distributions
from vbayes.evaluation import grid
from vbayes.config import ModelConfig
from vbayes.models import build, nets
from vbayes.models.likelihoods import gaussian
from vbayes.models.networks import mlp
from vbayes.models.proposals import implicit


@pytest.mark.slow
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "continuous_bernoulli"])
@pytest.mark.parametrize("masked", [False, True])
def test_matrix_form_equals_elementwise_form(likelihood, masked):
  config = ModelConfig(data_dim=12, latent_dim=2, network=mlp.Config(hidden_sizes=(8,)),
                       likelihood=likelihood)
  model = build(config)

  @jax.jit
  def both():
    params = model.init(jax.random.key(0))
    if likelihood == "gaussian":
      params["decoder_raw_scale"] = jax.random.normal(jax.random.key(1), (12,))
    x = jax.random.uniform(jax.random.key(2), (5, 12))
    if likelihood == "bernoulli":
      x = (x > 0.5).astype(jnp.float32)
    z = jax.random.normal(jax.random.key(3), (7, 2)) * 2
    mask = (jnp.arange(12) < 6).astype(jnp.float32) if masked else None
    return model.log_likelihood_matrix(params, z, x, mask), jax.vmap(
        lambda xx: jax.vmap(lambda zz: model.log_likelihood(params, zz, xx, mask))(z))(x)

  matrix, elementwise = both()
  np.testing.assert_allclose(matrix, elementwise, rtol=1e-5, atol=1e-4)


def test_log_likelihood_is_the_bernoulli_density():
  config = ModelConfig(data_dim=12, latent_dim=2, network=mlp.Config(hidden_sizes=(8,)))
  model = build(config)

  @jax.jit
  def both_ways():
    params = model.init(jax.random.key(0))
    z, x = jnp.array([0.3, -1.0]), (jnp.arange(12) % 3 == 0).astype(jnp.float32)
    logits = model.decode(params, z)
    top = (jnp.arange(12) < 6).astype(jnp.float32)
    return ((model.log_likelihood(params, z, x), distributions.bernoulli_log_prob(logits, x)),
            (model.log_likelihood(params, z, x, top),
             distributions.bernoulli_log_prob(logits[:6], x[:6])))

  for got, want in both_ways():  # every pixel, then the top half only
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "continuous_bernoulli"])
def test_log_likelihood_of_samples_is_log_likelihood_per_image_and_sample(likelihood):
  config = ModelConfig(data_dim=12, latent_dim=3, network=mlp.Config(hidden_sizes=(8,)),
                       likelihood=likelihood)
  model = build(config)

  @jax.jit
  def batched_and_one_at_a_time():
    params = model.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(2), (4, 12))
    if likelihood == "bernoulli":
      x = (x > 0.5).astype(jnp.float32)
    z = jax.random.normal(jax.random.key(3), (4, 5, 3))  # [B, K, L]
    one_at_a_time = lambda p, z: jax.vmap(lambda z_KxL, x_D: jax.vmap(
        lambda z_L: model.log_likelihood(p, z_L, x_D))(z_KxL))(z, x)  # [B, K]
    # The gradient training differentiates, with respect to parameters and samples.
    per_pair = lambda p, z: jnp.sum(one_at_a_time(p, z))
    batched = lambda p, z: jnp.sum(model.log_likelihood_of_samples(p, z, x))
    return (model.log_likelihood_of_samples(params, z, x), one_at_a_time(params, z),
            jax.grad(batched, argnums=(0, 1))(params, z),
            jax.grad(per_pair, argnums=(0, 1))(params, z))

  got, want, got_grad, want_grad = batched_and_one_at_a_time()
  assert got.shape == (4, 5)
  # The continuous Bernoulli sums log C(l) apart: float32 rounding of D = 12 terms of ~1.
  atol = 12 * 2.0**-23 * 4 if likelihood == "continuous_bernoulli" else 0
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=atol)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
               got_grad, want_grad)


@pytest.mark.parametrize("masked", [False, True])
def test_gaussian_matrix_form_is_accurate_near_the_mode_at_a_small_scale(masked):
  """At decoder scale s = 0.01 each pixel's a = 1 / (2 s^2) = 5000, so x^2 . a and
  (a m^2) are ~1e6 while their difference, sum_d a_d (x_d - m_d)^2, is ~D / 2 near
  the mode: an expansion into dot products leaves ~1e6 * 2^-24 * (rounding steps)
  of cancellation error. Compared with float64 arithmetic on the same float32
  decoder means and scales, the float32 matrix must be within the rounding of a
  sum of |terms|: 2^-24 * log2(D) per unit of sum_d |term_d| (pairwise summation),
  times a safety factor 8; near the mode that is ~0.02 nats of ~2.5e3."""
  dim = 784
  config = ModelConfig(data_dim=dim, latent_dim=2, network=mlp.Config(hidden_sizes=(16,)),
                       likelihood=gaussian.Config(min_scale=0.001))
  model = build(config)
  mask_D = (np.arange(dim) % 3 != 0).astype(np.float32) if masked else None

  @jax.jit
  def near_the_mode():
    params = model.init(jax.random.key(0))
    params["decoder_raw_scale"] = jnp.full((dim,), np.log(np.expm1(0.009)), jnp.float32)
    scale_D = config.likelihood.min_scale + jax.nn.softplus(params["decoder_raw_scale"])
    z_GxL = jax.random.normal(jax.random.key(3), (16, 2)) * 2
    m_GxD = jax.vmap(lambda z: model.mean_image(params, z))(z_GxL)
    # Images near the decoder mean of the first 4 latent points: x = m(z_b) + s eps.
    eps_BxD = jax.random.normal(jax.random.key(4), (4, dim))
    x_BxD = m_GxD[:4] + 0.01 * eps_BxD
    matrix_BxG = model.log_likelihood_matrix(params, z_GxL, x_BxD, mask_D)
    elementwise_BxG = jax.vmap(lambda xx: jax.vmap(
        lambda zz: model.log_likelihood(params, zz, xx, mask_D))(z_GxL))(x_BxD)
    return scale_D, m_GxD, x_BxD, matrix_BxG, elementwise_BxG

  scale_D, m_GxD, x_BxD, matrix_BxG, elementwise_BxG = (
      np.asarray(a) for a in near_the_mode())
  scale_D = scale_D.astype(np.float64)
  np.testing.assert_allclose(scale_D, 0.01, rtol=1e-5)

  w_D = np.ones(dim) if mask_D is None else np.asarray(mask_D, np.float64)
  x64, m64 = np.asarray(x_BxD, np.float64), np.asarray(m_GxD, np.float64)
  quad_BxG = np.einsum("bgd,d->bg", (x64[:, None] - m64[None]) ** 2, w_D * 0.5 / scale_D**2)
  const = np.sum(w_D * (np.log(scale_D) + 0.5 * np.log(2 * np.pi)))
  want_BxG = -quad_BxG - const
  sum_abs_BxG = quad_BxG + np.sum(w_D * np.abs(np.log(scale_D) + 0.5 * np.log(2 * np.pi)))
  tol_BxG = 8 * 2.0**-24 * np.log2(dim) * sum_abs_BxG

  # The near-mode entries (b, g = b) are ~2.5e3 with a quadratic part of ~D / 2.
  assert np.all(np.diagonal(quad_BxG) < dim)
  assert np.max(np.diagonal(tol_BxG)) < 0.05
  np.testing.assert_array_less(np.abs(elementwise_BxG - want_BxG), tol_BxG)
  np.testing.assert_array_less(np.abs(matrix_BxG - want_BxG), tol_BxG)
  np.testing.assert_array_less(np.abs(matrix_BxG - elementwise_BxG), 2 * tol_BxG)


@pytest.mark.parametrize("likelihood,batch", [("bernoulli", 1000), ("gaussian", 1000),
                                              ("gaussian", 7)])
def test_grid_chunks_bound_the_likelihood_matrix_block(likelihood, batch):
  """log_likelihood_matrix holds B * C floats per chunk for the Bernoulli decoder and
  B * C * D squared differences for the Gaussian one; the grid's chunks keep that
  at most MAX_CHUNK_ENTRIES, and as large as a divisor of G allows."""
  config = ModelConfig(likelihood=likelihood)
  per_pair = grid._entries_per_pair(build(config))
  assert per_pair == (784 if likelihood == "gaussian" else 1)
  z_NxCx2, _ = grid._grid_chunks(5.0, 512, batch, per_pair=per_pair)
  chunk = z_NxCx2.shape[1]
  assert z_NxCx2.shape[0] * chunk == 512 * 512
  assert batch * chunk * per_pair <= grid.MAX_CHUNK_ENTRIES
  assert batch * 2 * chunk * per_pair > grid.MAX_CHUNK_ENTRIES  # G = 2^18: the next divisor


@pytest.mark.parametrize("hidden", [(), (16, 8)])
def test_implicit_encoder_samples_equal_one_draw_at_a_time(hidden):
  """The implicit encoder's k draws (the image's first-layer product computed once)
  equal the MLP applied to [x, eps_k] for each draw, in value and in gradient."""
  config = ModelConfig(data_dim=12, latent_dim=3, network=mlp.Config(hidden_sizes=hidden),
                       proposal=implicit.Config(noise_dim=4, hidden_sizes=hidden))
  model = build(config)

  @jax.jit
  def both_ways():
    params = model.init(jax.random.key(0))["encoder"]
    x = jax.random.bernoulli(jax.random.key(1), 0.3, (12,)).astype(jnp.float32)
    key = jax.random.key(2)
    eps = jax.random.normal(key, (5, 4))
    samples = lambda p: model.proposal.sample(p, key, x, 5)
    one_at_a_time = lambda p: jax.vmap(
        lambda e: nets.mlp_apply(p, jnp.concatenate([x, e]), config.proposal.activation))(eps)
    loss = lambda f: lambda p: jnp.sum(jnp.sin(f(p)))
    return ((samples(params), one_at_a_time(params)),
            (jax.grad(loss(samples))(params), jax.grad(loss(one_at_a_time))(params)))

  values, gradients = both_ways()
  np.testing.assert_allclose(*values, rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               *gradients)
