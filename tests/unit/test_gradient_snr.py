"""Gradient signal-to-noise: the chunked moments against stacked draws and a known
distribution, and the k-trends Rainforth et al. (2018) and Tucker et al. (2019)
prove, on the linear-Gaussian model. The draws a test checks come from one compiled
program; the checks run on the host, in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import linear_gaussian
from vbayes.evaluation import gradient_snr as gs
from vbayes.objectives import iwae
from vbayes.models import build


def _on_host(tree):
  """tree with its arrays fetched to the host, as numpy arrays."""
  return jax.tree.map(np.asarray, tree)


def _gaussian_toy(**settings):
  """gs.gaussian_toy(key(0), **settings), its arrays drawn by one compiled program."""
  models = []

  def arrays():
    model, *drawn = gs.gaussian_toy(jax.random.key(0), **settings)
    models.append(model)
    return drawn

  params, x, theta = jax.jit(arrays)()
  return models[0], params, x, theta


@pytest.mark.slow
def test_moments_equal_those_of_the_stacked_draws(lg_model):
  grad_fn = gs.iwae_gradient(lg_model.config, k=5, estimator="reparam")

  @jax.jit
  def moments_and_draws():
    """The chunked moments of 12 draws and the 12 draws themselves, stacked."""
    params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
    x = lg_model.sample(jax.random.key(1), 3)
    key = jax.random.key(2)
    moments = gs.gradient_moments(grad_fn, params, key, x, num_draws=12, draws_per_chunk=4)
    one_draw = lambda m: grad_fn(params, jax.random.fold_in(key, m), x)
    return moments, jax.vmap(one_draw)(jnp.arange(12))

  (mean, var), stacked = _on_host(moments_and_draws())
  for got_m, got_v, draws in zip(jax.tree.leaves(mean), jax.tree.leaves(var),
                                 jax.tree.leaves(stacked)):
    np.testing.assert_allclose(got_m, draws.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got_v, draws.var(0, ddof=1), rtol=1e-3, atol=1e-8)


def test_snr_of_a_known_distribution_survives_a_large_mean():
  """g = w + sd * eps: SNR = |w| / sd, even with w = 1e4 sd (float32 E[g^2] - E[g]^2
  would lose the variance entirely)."""
  w = np.array([1e4, -3.0, 0.5], np.float32)
  sd = np.array([1.0, 2.0, 0.25], np.float32)
  grad_fn = lambda params, key, x: {"encoder": params["w"] + sd * jax.random.normal(key, (3,)),
                                    "decoder": params["w"]}
  m = 4096
  mean, var = _on_host(gs.gradient_moments(grad_fn, {"w": w}, jax.random.key(0), None,
                                           num_draws=m, draws_per_chunk=64))
  # Standard errors: of the mean sd / sqrt(m); of the variance sd^2 sqrt(2 / (m - 1)).
  np.testing.assert_array_less(np.abs(mean["encoder"] - w), 5 * sd / np.sqrt(m))
  np.testing.assert_array_less(np.abs(var["encoder"] / sd**2 - 1), 5 * np.sqrt(2 / (m - 1)))
  snr = gs.per_parameter_snr(mean, var)
  np.testing.assert_allclose(snr["encoder"], np.abs(w) / sd, rtol=5 * np.sqrt(0.5 / m))
  assert snr["decoder"].size == 0  # a zero-variance gradient has no SNR


@pytest.mark.parametrize("draws_per_chunk", [3, 8, 64])
def test_a_gradient_the_same_in_every_draw_has_zero_variance(draws_per_chunk):
  """Entries that no draw changes (0.1 and 1/3 are not exact in float32, so a plain
  chunk mean can miss them by an ulp) get variance 0 and are left out of the SNR."""
  w = np.array([0.1, 1 / 3, 123.456, -7.7], np.float32)
  grad_fn = lambda params, key, x: {"decoder": params["w"] + 0.0 * jax.random.normal(key, (4,))}
  mean, var = _on_host(gs.gradient_moments(grad_fn, {"w": w}, jax.random.key(0), None,
                                           num_draws=3 * 64, draws_per_chunk=draws_per_chunk))
  np.testing.assert_array_equal(mean["decoder"], w)
  np.testing.assert_array_equal(var["decoder"], np.zeros(4))
  assert gs.summarize(mean, var) == {}


def test_rejects_bad_draw_counts(lg_model):
  grad_fn = gs.iwae_gradient(lg_model.config, k=2, estimator="reparam")
  with pytest.raises(ValueError, match="must divide num_draws"):
    gs.gradient_moments(grad_fn, jax.jit(lg_model.params)(), jax.random.key(0),
                        np.zeros((1, 6), np.float32), num_draws=10, draws_per_chunk=4)


@pytest.mark.slow
def test_snr_trends_in_k(lg_model):
  """Plain IWAE: encoder SNR falls like k^-1/2, decoder SNR rises like k^1/2;
  DReG's encoder SNR rises. Slopes over k = 4..256 from 256 draws each (the
  per-parameter SNR estimates have relative error ~ 1/sqrt(2 * 256) = 4%)."""
  ks = (4, 16, 64, 256)
  grad_fns = {(estimator, k): gs.iwae_gradient(lg_model.config, k=k, estimator=estimator)
              for estimator in ("reparam", "dreg") for k in ks}

  @jax.jit
  def moments():
    """The gradient moments of every (estimator, k), from the same key."""
    params = lg_model.params(linear_gaussian.perturbed_encoder(lg_model))
    x = lg_model.sample(jax.random.key(1), 4)
    return {setting: gs.gradient_moments(grad_fn, params, jax.random.key(0), x, num_draws=256,
                                         draws_per_chunk=64)
            for setting, grad_fn in grad_fns.items()}

  snr = {setting: gs.summarize(mean, var) for setting, (mean, var) in _on_host(moments()).items()}
  slope = lambda est, group: gs.log_log_slope(ks, [snr[est, k][group]["mean"] for k in ks])
  assert -0.8 < slope("reparam", "encoder") < -0.25
  assert 0.3 < slope("reparam", "decoder") < 0.7
  assert slope("dreg", "encoder") > 0.25
  for k in ks:  # one decoder estimator for all three
    assert snr["dreg", k]["decoder"] == pytest.approx(snr["reparam", k]["decoder"], rel=1e-3)


@pytest.mark.slow
def test_gaussian_toy_at_its_optimum_is_exact():
  """With no perturbation and variance 1/2, q(z|x) is p(z|x): every importance weight
  is p(x) = N(x; theta, 2I), so L_k = log p(x) for any k and draw."""

  @jax.jit
  def bounds_and_encoders():
    """log p(x), L_k(x) for k = 1 and 7 (three images, one key each), and the encoder
    weights at the optimum and perturbed."""
    model, params, x, theta = gs.gaussian_toy(jax.random.key(0), dim=5, num_points=3,
                                              perturbation=0.0, encoder_variance=0.5)
    exact = jax.scipy.stats.multivariate_normal.logpdf(x, theta, 2.0 * jnp.eye(5))

    def bounds(k):
      bound = lambda key, x: iwae.iwae(params, key, x, model=model, k=k)["bound"]
      return jax.vmap(bound)(jax.random.split(jax.random.key(k), 3), x)

    _, perturbed, _, _ = gs.gaussian_toy(jax.random.key(0), dim=5, num_points=3)
    return (exact, {k: bounds(k) for k in (1, 7)}, params["encoder"]["layer_0"]["w"],
            perturbed["encoder"]["layer_0"]["w"])

  exact, bounds, optimum_w, perturbed_w = _on_host(bounds_and_encoders())
  for k in (1, 7):
    np.testing.assert_allclose(bounds[k], exact, rtol=1e-5, atol=1e-4)
  assert not np.allclose(perturbed_w, optimum_w)


def test_rainforth_groups_select_a_b_and_theta():
  """In gaussian_toy's parameters, "encoder (A, b)" is exactly the dim^2 + dim scalars
  that make q's mean A x + b (read off the encoder's output), and "decoder (theta)" the
  dim entries of theta; not the log-variance head, W = I or the decoder scale."""
  dim = 4

  @jax.jit
  def toy_and_encoder_mean():
    """gaussian_toy's params and theta, b (the mean at x = 0) and A^T (row i: A e_i)."""
    model, params, _, theta = gs.gaussian_toy(jax.random.key(0), dim=dim)
    encode_mean = lambda x_D: build(model).proposal_distribution(params, x_D)[0]
    b = encode_mean(jnp.zeros(dim))
    return params, theta, b, jax.vmap(encode_mean)(jnp.eye(dim)) - b

  params, theta, b, a_t = _on_host(toy_and_encoder_mean())
  groups = gs.rainforth_groups(dim)
  a_and_b = gs.select(params, groups["encoder (A, b)"])
  assert a_and_b.size == dim * dim + dim
  np.testing.assert_allclose(np.sort(a_and_b), np.sort(np.concatenate([np.ravel(a_t), b])),
                             atol=1e-6)
  np.testing.assert_array_equal(gs.select(params, groups["decoder (theta)"]), theta)
  sizes = {group: gs.select(params, s).size for group, s in gs.network_groups().items()}
  assert sizes == {"encoder": 2 * dim * dim + 2 * dim, "decoder": dim * dim + 2 * dim}


def test_paper_groups_do_not_see_the_extra_parameters():
  """Mean gradient 1 everywhere, variance 1 on A, b and theta (SNR 1) but 1e-6 on the
  log-variance head, W and the decoder scale (SNR 1000): the paper's groups report
  SNR 1, where all of each network's parameters (the default) report hundreds."""
  dim = 3
  # The shapes of gaussian_toy's parameters (jax.eval_shape: nothing is computed).
  params = jax.eval_shape(lambda: gs.gaussian_toy(jax.random.key(0), dim=dim)[1])
  mean = jax.tree.map(lambda p: np.ones(p.shape), params)
  var = jax.tree.map(lambda p: np.full(p.shape, 1e-6), params)
  var["encoder"]["layer_0"]["w"][:, :dim] = 1.0  # A^T
  var["encoder"]["layer_0"]["b"][:dim] = 1.0  # b
  var["decoder"]["layer_0"]["b"][:] = 1.0  # theta
  assert gs.summarize(mean, var, gs.rainforth_groups(dim)) == {
      "encoder (A, b)": {"mean": 1.0, "median": 1.0, "parameters": dim * dim + dim},
      "decoder (theta)": {"mean": 1.0, "median": 1.0, "parameters": dim}}
  every = gs.summarize(mean, var)
  assert every["encoder"]["mean"] > 100 and every["decoder"]["mean"] > 100


@pytest.mark.slow
def test_sweep_and_table_by_group():
  """One sweep reports the paper's groups and all parameters, labelled apart; the table
  shows the groups asked for, and `renamed` gives plots their "encoder"/"decoder"."""
  dim = 3
  model, params, x, _ = _gaussian_toy(dim=dim, num_points=4)
  groups = {**gs.rainforth_groups(dim), **gs.network_groups("encoder, all", "decoder, all")}
  snr = gs.sweep(params, jax.random.key(1), x, model=model, ks=(1, 4), estimators=("dreg",),
                 num_draws=16, groups=groups, log=lambda line: None)
  assert [s["parameters"] for s in snr["dreg", 4].values()] == [
      dim * dim + dim, dim, 2 * dim * dim + 2 * dim, dim * dim + 2 * dim]
  table = gs.markdown_table(snr, (1, 4), groups=gs.rainforth_groups(dim))
  assert "| encoder (A, b) SNR, mean | encoder (A, b), median | decoder (theta) SNR" in table
  assert "all" not in table
  plotted = gs.renamed(snr, {"encoder": "encoder (A, b)", "decoder": "decoder (theta)"})
  assert plotted["dreg", 1] == {"encoder": snr["dreg", 1]["encoder (A, b)"],
                                "decoder": snr["dreg", 1]["decoder (theta)"]}
