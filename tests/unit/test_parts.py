"""The part registries (vbayes/parts.py): every part builds where it fits, earlier flat
configs read as the same parts, and the two parts added as one file each (the mixture
prior and the continuous Bernoulli likelihood) have the densities they state, checked
by brute force in float64."""

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import configs
from vbayes import parts
from vbayes.config import ConfigError, TrainConfig
from vbayes.models import ModelConfig, build
from vbayes.models.likelihoods import continuous_bernoulli as cb
from vbayes.models.networks import mlp
from vbayes.models.priors import mixture

from tests.helpers.paths import REPO
SMALL = {"data_dim": 16, "latent_dim": 2, "network": mlp.Config(hidden_sizes=(4,))}


def _initial_scores_of(model, key, x_BxD):
  """The model's initial parameters at key, then log w [B, 4] of 4 draws from q(z | x)
  per image, or (without a proposal density) 4 prior draws [4, L] and their log p(z)."""
  params = model.init(key)
  if model.has_proposal_density:
    q = model.proposal_distribution(params, x_BxD)
    return model.log_weights(params, x_BxD, q.sample(jax.random.fold_in(key, 1), 4), q)
  z = model.sample_proposal(params, jax.random.fold_in(key, 1), x_BxD[0], 4)
  return z, model.log_prior(params, z)


@functools.partial(jax.jit, static_argnums=0)
def _initial_scores(models, key, x_BxD):
  """_initial_scores_of each of the models: one program per tuple of models."""
  return [_initial_scores_of(model, key, x_BxD) for model in models]


@pytest.mark.slow
@pytest.mark.parametrize("family", parts.FAMILIES)
def test_every_registered_part_builds_a_model_that_scores_a_batch(family):
  """Each part of each family, beside the default others (the two-layer prior beside
  its own; the proposals beside N(0, I)), gives finite log-weights or prior draws."""
  x = (np.random.default_rng(0).random((3, 16)) < 0.5).astype(np.float32)
  names = parts.registry(family)
  models = tuple(build(ModelConfig(**{**SMALL, family: name})) for name in names)
  for name, model, scores in zip(names, models, _initial_scores(models, jax.random.key(0), x)):
    if model.has_proposal_density:
      log_w = np.asarray(scores)
      assert log_w.shape == (3, 4) and np.all(np.isfinite(log_w)), (family, name)
    else:
      z, log_prior = (np.asarray(a) for a in scores)
      assert z.shape == (4, 2) and np.all(np.isfinite(log_prior)), (family, name)


def test_a_part_name_or_setting_that_does_not_exist_is_one_clear_error():
  with pytest.raises(ConfigError, match="unknown prior 'flat': choose one of"):
    ModelConfig(prior="flat")
  with pytest.raises(ConfigError, match="prior 'mixture' has no setting k: its settings are"):
    parts.part_config("prior", "mixture", k=3)


def test_a_flat_config_json_of_an_earlier_version_reads_as_the_same_parts():
  """The shipped checkpoint's config.json holds the flat model of before the registries;
  it reads as the Tomczak & Welling study's run, so such runs resume and evaluate."""
  path = REPO / "experiments" / "checkpoints" / "tw_vae_standard" / "config.json"
  flat = json.loads(path.read_text())
  assert "encoder" in flat["model"] and isinstance(flat["model"]["prior"], str)
  run = dict(configs.load("tomczak_welling").runs)["vae_standard"]
  assert TrainConfig.from_dict(flat) == run
  two_layers = {"data_dim": 784, "latent_dim": 100, "hidden_sizes": [200, 200],
                "activation": "tanh", "latent_dim_2": 50, "hidden_sizes_2": [100, 100],
                "encoder": "gaussian", "flow": "none", "prior": "standard_normal"}
  burda = dict(configs.load("burda_table1").runs)["two_layers_vae_k1"].model
  assert ModelConfig.from_dict(two_layers) == burda


def _cb_log_density_float64(logit: float, x: np.ndarray) -> np.ndarray:
  """log C(l) + x log lambda + (1 - x) log(1 - lambda) in float64, C from its lambda form
  2 artanh(1 - 2 lambda) / (1 - 2 lambda) where float64 holds 1 - 2 lambda away from -1
  and 1 (|l| <= 20), else from l / tanh(l / 2)."""
  if abs(logit) <= 20:
    lam = 1.0 / (1.0 + math.exp(-logit))
    c = 2.0 if abs(1 - 2 * lam) < 1e-12 else 2 * math.atanh(1 - 2 * lam) / (1 - 2 * lam)
  else:
    c = logit / math.tanh(logit / 2)
  log_lam, log_1m_lam = -np.logaddexp(0.0, -logit), -np.logaddexp(0.0, logit)
  return math.log(c) + x * log_lam + (1 - x) * log_1m_lam


LOGITS = (-40.0, -5.0, -0.51, -0.49, -2e-3, 0.0, 1e-6, 2e-3, 0.011, 0.49, 0.51, 5.0, 40.0)


@jax.jit
def _cb_log_density_at(logit, x_N):
  """log_prob of the one-pixel image xi [1] at logit [1], for each xi of x_N: [N]."""
  return jax.vmap(lambda xi: cb.log_prob(jnp.full((1,), logit), jnp.full((1,), xi)))(x_N)


def test_the_continuous_bernoulli_is_normalized_and_matches_its_lambda_form():
  """For each logit, the density from log_prob integrates to 1 over [0, 1] (Gauss-Legendre,
  float64 sums of the float32 density) and equals the float64 lambda form pointwise."""
  nodes, weights = np.polynomial.legendre.leggauss(200)
  x = 0.5 * (nodes + 1.0)
  for logit in LOGITS:
    got = np.asarray(_cb_log_density_at(np.float32(logit), x.astype(np.float32)))
    want = _cb_log_density_float64(logit, x)
    np.testing.assert_allclose(got, want, atol=2e-5 * max(1.0, abs(logit)), err_msg=logit)
    total = 0.5 * np.sum(weights * np.exp(got.astype(np.float64)))
    assert total == pytest.approx(1.0, abs=1e-4 * max(1.0, abs(logit))), logit


def test_the_continuous_bernoulli_normalizer_is_smooth_through_one_half():
  """log C(l) and its gradient are finite at l = 0 and continuous across the switch to
  the series at |l| = SERIES_BELOW (d/dl log C(l) = 1/l - 1/sinh(l), 0 at l = 0)."""
  edge = cb.SERIES_BELOW
  value_and_grad = jax.jit(jax.value_and_grad(cb.log_normalizer))  # one program for all
  for logit in (edge * 0.9999, edge * 1.0001, -edge * 0.9999, 1e-3, 0.2):
    logit = float(np.float32(logit))
    want = math.log(logit / math.tanh(logit / 2))  # float64
    assert float(value_and_grad(np.float32(logit))[0]) == pytest.approx(want, abs=2e-7)
  value, grad = value_and_grad(np.float32(0.0))
  assert float(value) == pytest.approx(math.log(2.0), abs=1e-7)
  assert float(grad) == 0.0
  for logit in (0.3, edge * 0.999, edge * 1.001, -4.0):
    want = 1 / logit - 1 / math.sinh(logit)
    assert float(value_and_grad(np.float32(logit))[1]) == pytest.approx(
        want, rel=1e-3, abs=1e-6), logit


def test_the_continuous_bernoulli_mean_and_draws_match_the_density():
  """E[x] from `mean` equals the float64 integral of x p(x); the mean of 40000 draws is
  within 4 standard errors of it (sd of x at most 1/2)."""
  nodes, weights = np.polynomial.legendre.leggauss(200)
  x = 0.5 * (nodes + 1.0)

  @jax.jit
  def means_and_draws(key, logits):
    return cb.mean(logits), cb.sample(key, jnp.broadcast_to(logits, (40000, len(LOGITS))))

  means, draws = (np.asarray(a) for a in means_and_draws(jax.random.key(0),
                                                         np.asarray(LOGITS, np.float32)))
  assert float(draws.min()) >= 0.0 and float(draws.max()) <= 1.0
  for i, logit in enumerate(LOGITS):
    want = 0.5 * np.sum(weights * x * np.exp(_cb_log_density_float64(logit, x)))
    assert float(means[i]) == pytest.approx(want, abs=2e-6), logit
    spread = float(np.std(draws[:, i])) / math.sqrt(40000)
    assert abs(float(draws[:, i].mean()) - want) < 4 * spread + 1e-6, logit


def test_the_continuous_bernoulli_batched_forms_equal_the_one_image_density():
  """log_prob_of_samples [B, K] and log_prob_matrix [B, G] (with a mask) are log_prob of
  each pair."""
  lik = cb.likelihood()
  rng = np.random.default_rng(0)
  out_BxKxD = rng.normal(0, 3, (3, 4, 5)).astype(np.float32)
  x_BxD = rng.random((3, 5)).astype(np.float32)
  mask = np.asarray([1.0, 0.0, 1.0, 1.0, 0.0], np.float32)

  @jax.jit
  def batched_and_per_pair(out_BxKxD, x_BxD, mask):
    per_pair = jax.vmap(jax.vmap(lambda o, x: lik.log_prob(None, o, x), (0, None)))
    out_GxD = out_BxKxD[0]
    matrix_per_pair = jax.vmap(lambda x: jax.vmap(lambda o: lik.log_prob(None, o, x, mask))(
        out_GxD))
    return (lik.log_prob_of_samples(None, out_BxKxD, x_BxD), per_pair(out_BxKxD, x_BxD),
            lik.log_prob_matrix(None, out_GxD, x_BxD, mask), matrix_per_pair(x_BxD))

  of_samples, of_each_sample, matrix, of_each_pair = batched_and_per_pair(out_BxKxD, x_BxD,
                                                                          mask)
  np.testing.assert_allclose(of_samples, of_each_sample, rtol=1e-5)
  np.testing.assert_allclose(matrix, of_each_pair, rtol=1e-5)


def test_the_mixture_prior_density_is_the_weighted_sum_of_its_components():
  """log p(z) equals float64 log sum_c pi_c N(z; m_c, diag v_c) at random parameters, and
  exp(log p) integrates to 1 over a 2-D grid."""
  rng = np.random.default_rng(0)
  logits, means = rng.normal(size=3), rng.normal(size=(3, 2))
  log_vars = rng.normal(-0.5, 0.3, size=(3, 2))
  dist = mixture.GaussianMixture(*(np.asarray(a, np.float32) for a in (logits, means,
                                                                       log_vars)))
  z = rng.normal(0, 2, size=(50, 2))
  pi = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
  comps = np.exp(-0.5 * np.sum((z[:, None] - means) ** 2 / np.exp(log_vars) + log_vars
                               + math.log(2 * math.pi), axis=-1))
  side = np.linspace(-8, 8, 801)
  grid = np.stack(np.meshgrid(side, side), -1).reshape(-1, 2)
  log_prob = jax.jit(lambda dist, z, grid: (dist.log_prob(z), dist.log_prob(grid)))
  log_p_z, log_p_grid = log_prob(dist, z.astype(np.float32), grid.astype(np.float32))
  np.testing.assert_allclose(log_p_z, np.log(comps @ pi), rtol=1e-5, atol=1e-5)
  mass = np.exp(np.asarray(log_p_grid, np.float64)).sum()
  assert mass * (side[1] - side[0]) ** 2 == pytest.approx(1.0, abs=1e-3)


def test_mixture_prior_draws_pick_components_by_their_weights():
  """The mean of 40000 draws is sum_c pi_c m_c within 4 standard errors per coordinate."""
  dist = mixture.GaussianMixture(np.asarray([0.0, 1.0, -1.0], np.float32),
                                 np.asarray([[3.0, 0.0], [-2.0, 1.0], [0.0, -4.0]], np.float32),
                                 np.zeros((3, 2), np.float32))
  z = np.asarray(jax.jit(lambda dist, key: dist.sample(key, 40000))(dist, jax.random.key(0)))
  pi = np.exp([0.0, 1.0, -1.0]) / np.exp([0.0, 1.0, -1.0]).sum()
  want = pi @ dist.mean
  np.testing.assert_array_less(np.abs(z.mean(0) - want), 4 * z.std(0) / math.sqrt(40000))


def test_a_part_switched_to_takes_the_settings_the_model_shares_as_the_flat_model_did():
  """Switching to the implicit encoder (replace_objective, an objective path), the IAF or
  the two-layer prior takes the network's hidden_sizes and activation, as the flat
  ModelConfig of earlier versions shared them: the AVB runs of the four_frames study keep
  their 64-64 encoder."""
  from vbayes.overrides import with_overrides
  from vbayes.models.proposals import iaf, implicit
  runs = dict(configs.load("four_frames").runs)
  assert runs["avb"].model.proposal == implicit.Config(hidden_sizes=(64, 64))
  tanh = TrainConfig(model=ModelConfig(network=mlp.Config(hidden_sizes=(7,), activation="tanh")))
  switched = with_overrides(tanh, {"objective": "avb"}).model.proposal
  assert switched == implicit.Config(hidden_sizes=(7,), activation="tanh")
  flow = with_overrides(tanh, {"model.flow": "iaf", "objective.kl_estimator": "mc"})
  assert flow.model.proposal == iaf.Config(activation="tanh")
  assert with_overrides(flow, {"model.encoder": "gaussian"}) == flow  # the flow stays
  two = with_overrides(tanh, {"model.latent_dim_2": "3", "objective": "iwae"})
  assert two.model.prior.activation == "tanh"
  with pytest.raises(ConfigError, match="model.flow='IAF': a flow is none or iaf"):
    with_overrides(tanh, {"model.flow": "IAF"})


def test_the_continuous_bernoulli_mean_has_finite_gradients_at_extreme_logits():
  @jax.jit
  def grads_and_means(grad_at, mean_at):
    return jax.vmap(jax.grad(cb.mean))(grad_at), cb.mean(mean_at)

  grad, means = grads_and_means(np.asarray([-200.0, -90.0, 90.0, 200.0], np.float32),
                                np.asarray([-200.0, 200.0], np.float32))
  assert np.all(np.isfinite(np.asarray(grad)))
  np.testing.assert_allclose(means, [1 / 200, 1 - 1 / 200], rtol=1e-5)
