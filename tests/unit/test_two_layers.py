"""Two stochastic layers (Burda et al. 2016): p(z2) p(z1|z2) p(x|z1) and q(z1|x) q(z2|z1),
built from config (latent_dim_2 > 0) behind the model interface (vbayes/models/hierarchical.py).

The closed-form checks use the linear two-layer Gaussian model
    z2 ~ N(0, I),  z1 | z2 ~ N(beta * z2 + c, diag v),  x | z1 ~ N(A z1 + a, s^2 I),
with beta a diagonal matrix and A of orthogonal columns, so that
    z1 ~ N(c, diag(beta^2 + v)) =: N(c, diag r),   log p(x) = log N(x; A c + a, A diag(r) A^T + s^2 I),
    p(z1 | x) = N(Lambda^{-1} (A^T (x - a) / s^2 + c / r), Lambda^{-1}),  Lambda = diag(1/r) + A^T A / s^2,
    p(z2 | z1) = N(beta (z1 - c) / r, v / r)   (Gaussian conditioning, coordinate by coordinate):
both factors of the exact posterior p(z1, z2 | x) = p(z1 | x) p(z2 | z1) are linear Gaussian
encoders, so q can equal it.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import model_checks
from vbayes import config as config_lib
from vbayes.config import ConfigError
from vbayes.evaluation import importance_sampling as evaluate
from vbayes.models import build
from vbayes.objectives import iwae
from vbayes.overrides import with_overrides
from vbayes.models.likelihoods import gaussian
from vbayes.models.networks import mlp
from vbayes.models.priors import two_layer

DATA, L1, L2, SCALE = 5, 2, 2, 0.5
BETA, C, V = np.array([1.2, 0.7]), np.array([0.3, -0.4]), np.array([0.5, 0.8])

LINEAR = config_lib.ModelConfig(data_dim=DATA, latent_dim=L1, network=mlp.Config(hidden_sizes=()),
                                likelihood=gaussian.Config(gaussian_mean="identity",
                                                           min_scale=1e-3),
                                prior=two_layer.Config(latent_dim_2=L2, hidden_sizes_2=()))


def linear(w, b):
  return {"layer_0": {"w": np.asarray(w, np.float32), "b": np.asarray(b, np.float32)}}


@pytest.fixture(scope="module")
def linear_model():
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(DATA, L1)))
  a_mat = q * np.array([1.5, 0.9])  # orthogonal columns
  a = rng.normal(size=DATA) * 0.3
  r = BETA**2 + V
  precision = 1 / r + np.diag(a_mat.T @ a_mat) / SCALE**2
  enc_w = a_mat / SCALE**2 / precision  # mean(z1 | x) = x enc_w + enc_b
  enc_b = (C / r - a_mat.T @ a / SCALE**2) / precision
  params = {
      "decoder": linear(a_mat.T, a),
      "decoder_raw_scale": np.full((DATA,), np.log(np.expm1(SCALE - 1e-3)), np.float32),
      "prior": linear(np.concatenate([np.diag(BETA), np.zeros((L2, L1))], 1),
                      np.concatenate([C, np.log(V)])),
      "encoder": {
          "bottom": linear(np.concatenate([enc_w, np.zeros((DATA, L1))], 1),
                           np.concatenate([enc_b, -np.log(precision)])),
          "top": linear(np.concatenate([np.diag(BETA / r), np.zeros((L1, L2))], 1),
                        np.concatenate([-BETA * C / r, np.log(V / r)]))},
  }
  z1 = C + np.sqrt(r) * rng.normal(size=(4, L1))
  x = z1 @ a_mat.T + a + SCALE * rng.normal(size=(4, DATA))
  cov = a_mat @ np.diag(r) @ a_mat.T + SCALE**2 * np.eye(DATA)
  log_px = jax.jit(jax.scipy.stats.multivariate_normal.logpdf)(x, a_mat @ C + a, cov)
  return {"params": params, "x": np.asarray(x, np.float32), "log_px": np.asarray(log_px)}


def normal_log_pdf(z, mean, var):
  return float(np.sum(-0.5 * (z - mean) ** 2 / var - 0.5 * np.log(2 * np.pi * var)))


def test_the_log_joint_and_log_q_term_by_term():
  """log p(x, z1, z2) = log N(z2; 0, I) + log N(z1; p-net(z2)) + log Bern(x; dec(z1)) and
  log q = log N(z1; q-net(x)) + log N(z2; q-net(z1)), each net and density written out
  here in numpy for one image."""
  config = config_lib.ModelConfig(data_dim=7, latent_dim=3,
                                  network=mlp.Config(hidden_sizes=(6,), activation="tanh"),
                                  prior=two_layer.Config(latent_dim_2=2, hidden_sizes_2=(4,),
                                                         activation="tanh"))
  model = build(config)
  rng = np.random.default_rng(1)
  x = (rng.random(7) < 0.4).astype(np.float32)
  z1, z2 = rng.normal(size=3), rng.normal(size=2)

  @jax.jit
  def params_and_log_densities(x, z):
    params = model.init(jax.random.key(0))
    q = model.proposal_distribution(params, x)
    return params, model.log_joint(params, x, z), q.log_prob(z)

  z = np.concatenate([z1, z2]).astype(np.float32)
  params, log_joint, log_q = jax.tree.map(np.asarray, params_and_log_densities(x, z))
  mlp_of = lambda p, h: np.tanh(h @ p["layer_0"]["w"] + p["layer_0"]["b"]) @ p["layer_1"]["w"] \
      + p["layer_1"]["b"]
  m1, lv1 = np.split(mlp_of(params["prior"], z2), 2)
  logits = mlp_of(params["decoder"], z1)
  expected_joint = (normal_log_pdf(z2, 0.0, 1.0) + normal_log_pdf(z1, m1, np.exp(lv1))
                    + float(np.sum(x * logits - np.log1p(np.exp(logits)))))
  np.testing.assert_allclose(log_joint, expected_joint, rtol=1e-5)
  qm1, qlv1 = np.split(mlp_of(params["encoder"]["bottom"], x), 2)
  qm2, qlv2 = np.split(mlp_of(params["encoder"]["top"], z1), 2)
  expected_q = normal_log_pdf(z1, qm1, np.exp(qlv1)) + normal_log_pdf(z2, qm2, np.exp(qlv2))
  np.testing.assert_allclose(log_q, expected_q, rtol=1e-5)


def test_draws_carry_their_log_density_and_split_into_layers():
  """draw_and_log_prob's log q (from the noise) equals log_prob at the drawn z; z1 is
  the encoder's Gaussian draw from the first L1 noise coordinates, and prior samples
  have the layers' moments (z2 ~ N(0, I))."""
  model = build(dataclasses.replace(LINEAR, network=mlp.Config(hidden_sizes=(6,)),
                                    prior=LINEAR.prior.replace(hidden_sizes_2=(4,))))

  @jax.jit
  def draws():
    params = model.init(jax.random.key(2))
    x = jax.random.normal(jax.random.key(3), (3, DATA))
    q = model.proposal_distribution(params, x)
    eps = q.noise(jax.random.key(4), 6)
    z, log_q = q.draw_and_log_prob(eps)
    z_prior = model.prior_distribution(params).sample(jax.random.key(5), 20000)
    return z, log_q, q.log_prob(z), q.first.draw(eps[..., :L1]), z_prior

  z, log_q, log_q_at_z, first, z_prior = jax.tree.map(np.asarray, draws())
  assert z.shape == (3, 6, L1 + L2) and log_q.shape == (3, 6)
  np.testing.assert_allclose(log_q, log_q_at_z, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(z[..., :L1], first, rtol=1e-6)
  top = z_prior[:, L1:]
  # mean and variance of z2 within 5 standard errors: sd 1/sqrt(n) and sqrt(2/n)
  assert np.all(np.abs(top.mean(0)) < 5 / math.sqrt(20000))
  assert np.all(np.abs(top.var(0) - 1) < 5 * math.sqrt(2 / 20000))


def test_every_weight_is_p_of_x_at_the_exact_posterior(linear_model):
  """With q(z1|x) q(z2|z1) = p(z1, z2 | x) every importance weight is the closed-form
  p(x): the IWAE bound and importance-sampled log p(x) equal it."""
  model = build(LINEAR)

  @jax.jit
  def bound_and_log_px(params, x):
    eps = jax.random.normal(jax.random.key(6), (4, 7, L1 + L2))
    log_px, _ = evaluate.importance_sampled_log_likelihood(params, jax.random.key(7), x,
                                                           model=model, k=50, chunk=10)
    return iwae.iwae_bounds(params, eps, x, model=model)["bound"], log_px

  bound, log_px = bound_and_log_px(linear_model["params"], linear_model["x"])
  np.testing.assert_allclose(bound, linear_model["log_px"], rtol=1e-5)
  np.testing.assert_allclose(log_px, linear_model["log_px"], rtol=1e-5)


def test_importance_sampling_with_an_imperfect_encoder_converges_to_p_of_x(linear_model):
  """With the top encoder's mean and variance off, k=20000 importance sampling is within
  4 of its delta-method standard errors, sd(w) / (mean(w) sqrt(k)), of log p(x)."""
  model = build(LINEAR)

  @jax.jit
  def log_px_and_log_weights(params, x):
    top = jax.tree.map(lambda v: v * 0.8 + 0.2, params["encoder"]["top"])
    params = {**params, "encoder": {**params["encoder"], "top": top}}
    log_px, _ = evaluate.importance_sampled_log_likelihood(params, jax.random.key(8), x,
                                                           model=model, k=20000, chunk=2000)
    q = model.proposal_distribution(params, x)
    z, log_q = q.sample_and_log_prob(jax.random.key(9), 20000)
    return log_px, model.log_weights(params, x, z, q, log_q_BxK=log_q)

  log_px, log_w = jax.tree.map(np.asarray, log_px_and_log_weights(linear_model["params"],
                                                                  linear_model["x"]))
  w = np.exp(log_w - np.max(log_w, axis=1, keepdims=True))
  error = np.std(w, axis=1) / np.mean(w, axis=1) / math.sqrt(20000)
  assert np.all(np.std(log_w, axis=1) > 0.05)  # the encoder is off
  np.testing.assert_array_less(np.abs(log_px - linear_model["log_px"]), 4 * error + 1e-4)


def test_stl_and_dreg_stop_the_gradient_into_every_parameter_of_q(linear_model):
  """At the exact posterior log w is constant in z, so the path derivative is zero:
  STL's and DReG's encoder gradients vanish for q(z1|x) and q(z2|z1) alike (a
  stop_gradient on only the first layer's mean and variance would leave the top
  net's score term), while the plain reparameterized gradient does not."""
  model = build(LINEAR)

  @jax.jit
  def encoder_gradients(params, x):
    key = jax.random.key(10)
    loss = lambda p, e: iwae.iwae_loss(p, key, x, model=model, k=8, estimator=e)[0]
    return {e: jax.grad(loss)(params, e)["encoder"] for e in iwae.ESTIMATORS}

  grads = jax.tree.map(np.asarray, encoder_gradients(linear_model["params"], linear_model["x"]))
  largest = {estimator: {part: max(float(np.max(np.abs(g))) for g in jax.tree.leaves(grad[part]))
                         for part in ("bottom", "top")}
             for estimator, grad in grads.items()}
  assert min(largest["reparam"].values()) > 1e-3
  for estimator in ("stl", "dreg"):
    assert max(largest[estimator].values()) < 1e-4, (estimator, largest[estimator])


def test_iwae_with_one_sample_is_the_monte_carlo_elbo():
  model = build(dataclasses.replace(LINEAR, network=mlp.Config(hidden_sizes=(6,)),
                                    prior=LINEAR.prior.replace(hidden_sizes_2=(4,)),
                                    likelihood="bernoulli"))
  params, x, eps = jax.jit(lambda: (
      model.init(jax.random.key(11)),
      jax.random.bernoulli(jax.random.key(12), 0.3, (4, DATA)).astype(jnp.float32),
      jax.random.normal(jax.random.key(13), (4, L1 + L2))))()
  model_checks.assert_iwae_with_one_sample_is_the_monte_carlo_elbo(model, params, x, eps)


def test_evaluation_reports_active_units_per_layer(linear_model):
  """Active units per layer: z1's means vary with x (both units active); z2's are
  beta (z1 - c) / r averaged over q(z1|x), so they vary too; zeroing the top encoder's
  mean weights makes z2's means constant (0 active), counted from sample means."""
  model = build(LINEAR)
  x = np.asarray(jax.jit(lambda: jax.random.normal(jax.random.key(14), (64, DATA)) * 2.0)())
  out = evaluate.evaluate(linear_model["params"], jax.random.key(15), x, model=model,
                          binarization="fixed", k=20, batch_size=32)  # x as it is
  assert out["active_units_per_layer"] == [2, 2] and out["active_units"] == 4
  params = jax.tree.map(lambda v: v, linear_model["params"])
  top = params["encoder"]["top"]["layer_0"]
  params["encoder"]["top"]["layer_0"] = {"w": top["w"] * 0, "b": top["b"]}
  out = evaluate.evaluate(params, jax.random.key(15), x, model=model, binarization="fixed",
                          k=20, batch_size=32)
  assert out["active_units_per_layer"] == [2, 0]


@pytest.mark.parametrize("objective", [*model_checks.ENCODER_OBJECTIVES,
                                       config_lib.objective_config("prior_is", k=8)],
                         ids=model_checks.objective_id)
def test_every_objective_that_applies_trains_a_two_layer_model(objective):
  """Two jitted calls of 50 steps on 4Frames-sized binary data, traced once; the loss
  falls from the first 10 steps to the last 10 and p(z1|z2)'s weights move."""
  config = config_lib.TrainConfig(
      model=config_lib.ModelConfig(data_dim=4, latent_dim=2, network=mlp.Config(hidden_sizes=(8,)),
                                   prior=two_layer.Config(latent_dim_2=2, hidden_sizes_2=(8,))),
      data=config_lib.DataConfig(dataset="4frames"), objective=objective, batch_size=20,
      learning_rate=1e-2)
  x = jax.device_put(np.eye(4, dtype=np.uint8)[np.arange(1000) % 4])
  state, first, second = model_checks.train_two_calls(config, x, steps=50)
  start = model_checks.initial_params(config)
  first_loss, second_loss = np.asarray(first["loss"]), np.asarray(second["loss"])
  assert float(second_loss[-10:].mean()) < float(first_loss[:10].mean())
  assert not np.allclose(state["params"]["prior"]["layer_0"]["w"],
                         start["prior"]["layer_0"]["w"])


@pytest.mark.parametrize("settings, message", [
    ({"objective.kl_estimator": "analytic"}, "no closed form for the two_layer prior with "
     "the gaussian proposal"),
    ({"model.proposal": "iaf"}, "a flow posterior is built here for one stochastic layer"),
    ({"model.log_var_limits": "-6,2"}, "log_var_limits clip the one-layer Gaussian encoder"),
    ({"objective": "avb"}, "the implicit encoder has one stochastic layer"),
])
def test_a_two_layer_model_the_objective_cannot_train_is_one_clear_error(settings, message):
  start = config_lib.TrainConfig(
      model=config_lib.ModelConfig(data_dim=4, latent_dim=2,
                                   prior=two_layer.Config(latent_dim_2=2)),
      data=config_lib.DataConfig(dataset="4frames"),
      objective=config_lib.objective_config("elbo", kl_estimator="mc"))
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
    with_overrides(start, settings)
