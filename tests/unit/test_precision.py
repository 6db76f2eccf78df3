"""Full float32 products in every estimate (vbayes/precision.py).

XLA:CPU ignores matmul precision, so these tests read it where it is decided: in the
lowered programs (every dot_general and convolution of an estimator must ask for
HIGHEST), and by emulating an accelerator's default on the CPU (the inputs of any
product below HIGHEST rounded to bfloat16, as a TPU's single pass does), which shows
what the policy prevents."""

import contextlib
import functools
import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax._src.lax import lax as lax_internal

from vbayes import config as config_lib, distributions, precision, svi
from vbayes.evaluation import ais, grid, kernel_density
from vbayes.evaluation import importance_sampling as is_lib
from vbayes.models import build
from vbayes.training import step as training_step
from vbayes.models.networks import conv
from vbayes.models.networks import gated
from vbayes.models.networks import mlp
from vbayes.models.priors import two_layer
from vbayes.models.priors import vamp
from vbayes.models.proposals import gaussian
from vbayes.models.proposals import iaf
from vbayes.models.proposals import implicit

MODELS = {
    "mlp": config_lib.ModelConfig(data_dim=16, latent_dim=2, network=mlp.Config(hidden_sizes=(8,))),
    "gated_vampprior": config_lib.ModelConfig(data_dim=16, latent_dim=3,
                                              network=gated.Config(hidden_sizes=(8,)),
                                              prior=vamp.Config(num_pseudo_inputs=5,
                                                                pseudo_input_limits=(0.0, 1.0)),
                                              proposal=gaussian.Config(log_var_limits=(-6.0, 2.0))),
    "conv": config_lib.ModelConfig(data_dim=16, latent_dim=2,
                                   network=conv.Config(hidden_sizes=(8,), conv_channels=(2,))),
    "two_layers": config_lib.ModelConfig(data_dim=16, latent_dim=3,
                                         network=mlp.Config(hidden_sizes=(8,)),
                                         prior=two_layer.Config(latent_dim_2=2,
                                                                hidden_sizes_2=(4,))),
    "iaf": config_lib.ModelConfig(data_dim=16, latent_dim=3, network=mlp.Config(hidden_sizes=(8,)),
                                  proposal=iaf.Config(flow_steps=1, flow_hidden_sizes=(8,))),
    "gaussian_likelihood": config_lib.ModelConfig(data_dim=16, latent_dim=2,
                                                  network=mlp.Config(hidden_sizes=(8,)),
                                                  likelihood="gaussian"),
    "implicit": config_lib.ModelConfig(data_dim=16, latent_dim=2,
                                       network=mlp.Config(hidden_sizes=(8,)),
                                       proposal=implicit.Config(hidden_sizes=(8,))),
    "no_encoder": config_lib.ModelConfig(data_dim=16, latent_dim=2,
                                         network=mlp.Config(hidden_sizes=(8,)), proposal="prior"),
}
PRODUCT = re.compile(r"stablehlo\.(dot_general|convolution)\b")
HIGHEST = re.compile(r"precision = \[HIGHEST, HIGHEST\]|precision_config = \["
                     r"#stablehlo<precision HIGHEST>, #stablehlo<precision HIGHEST>\]")


def products_below_highest(lowered) -> tuple[int, list[str]]:
  """(number of products, those not at HIGHEST) in a lowered program's StableHLO."""
  products = [line.strip() for line in lowered.as_text().splitlines() if PRODUCT.search(line)]
  return len(products), [line[:160] for line in products if not HIGHEST.search(line)]


_TRACE_CONTEXT = jax.make_user_context(0)  # a value in JAX's jit cache keys
_TRACE_CONTEXTS = itertools.count(1)


def traced_anew():
  """A context in which every jitted function is traced again (a new value in JAX's jit
  cache keys), not taken from a trace made outside it."""
  return _TRACE_CONTEXT(next(_TRACE_CONTEXTS))


def estimator_programs(name: str):
  """Every evaluation program of the model `name`, lowered: {program: Lowered}. Lowered
  from the shapes of its inputs (a program depends on nothing else), so that nothing is
  compiled or run."""
  model = build(MODELS[name])
  key = jax.random.key(1)
  params = jax.eval_shape(model.init, key)
  x = jax.ShapeDtypeStruct((2, 16), jnp.float32)
  q = jax.eval_shape(functools.partial(is_lib.proposal_for, model=model, proposal_samples=8),
                     params, key, x)
  programs = {
      "proposal_for": is_lib.proposal_for.lower(params, key, x, model=model,
                                                proposal_samples=8),
      "importance sampling": is_lib.importance_sampled_log_likelihood.lower(
          params, key, x, model=model, k=4, chunk=2, proposal=q),
      "ais": ais.ais_log_likelihood.lower(params, key, x, q, model=model, chains=2,
                                          num_steps=3),
      "bdmc": ais.bdmc.lower(params, key, x, jax.ShapeDtypeStruct((2, model.latent_dim),
                                                                  x.dtype), q,
                             model=model, chains=2, num_steps=3),
      "simulate": jax.jit(lambda p, k: ais.simulate(p, k, 2, model=model)).lower(params, key),
  }
  if model.has_encoder:
    programs["posterior_mean"] = is_lib.posterior_mean.lower(q, key, 8)
  if model.has_proposal_density and model.has_encoder:
    programs["kl"] = is_lib._kl.lower(q, params, key, model=model, samples=8)  # pylint: disable=protected-access
  if model.latent_dim == 2:
    programs["quadrature"] = grid.log_joint_on_grid.lower(params, x, model=model, limit=3.0,
                                                          points=8)
  if MODELS[name].proposal.name == "implicit":
    programs["kernel density"] = kernel_density.kde_log_likelihood.lower(
        params, key, x, model=model, k=4, num_centres=4, bandwidth=0.5, chunk=2)
  if name == "mlp":
    q_svi = {"mean": jax.ShapeDtypeStruct((2, 2), jnp.float32),
             "log_var": jax.ShapeDtypeStruct((2, 2), jnp.float32)}
    programs["stochastic VI"] = svi._fit_steps.lower(  # pylint: disable=protected-access
        params, key, x, jax.ShapeDtypeStruct((16,), jnp.float32), q_svi,
        jax.eval_shape(optax.adam(0.01).init, q_svi), 0, model=model,
        steps=2, num_samples=2, learning_rate=0.01)
  return programs


@pytest.mark.parametrize("name", [
    name if name in ("mlp", "gated_vampprior") else pytest.param(name, marks=pytest.mark.slow)
    for name in MODELS])
def test_every_estimator_program_computes_at_full_precision(name):
  """The audit: every matrix product and convolution in each evaluation program of each
  model asks for HIGHEST (float32 on TPU and GPU too); the programs do contain some."""
  counts = {}
  for program, lowered in estimator_programs(name).items():
    counts[program], below = products_below_highest(lowered)
    assert not below, (f"{name}, {program}: {len(below)} of {counts[program]} products "
                       f"below HIGHEST: {below[:2]}")
  assert counts["importance sampling"] > 0 and counts["ais"] > 0


def test_the_audit_finds_products_at_the_default_precision(monkeypatch):
  """With the policy switched to DEFAULT, the audit sees every product of the AIS program
  (networks, pseudo-inputs, mixture) below HIGHEST: it checks something."""
  monkeypatch.setattr(precision, "ESTIMATES", "default")
  with traced_anew():
    count, below = products_below_highest(estimator_programs("gated_vampprior")["ais"])
  assert len(below) == count > 0


def test_training_follows_its_configured_precision():
  """A training step's products follow TrainConfig.matmul_precision: HIGHEST by default,
  DEFAULT when asked (an accelerator's fast passes), and the VampPrior's mixture
  density stays at HIGHEST either way."""
  def lowered_step(matmul_precision, model):
    config = config_lib.TrainConfig(model=model, objective=config_lib.objective_config(
        "elbo", kl_estimator="mc"), batch_size=2, matmul_precision=matmul_precision)
    update = training_step.make_update(config)
    state = jax.eval_shape(functools.partial(training_step.init_state, config=config),
                           jax.random.key(0))
    x = jax.ShapeDtypeStruct((2, 16), jnp.float32)
    return jax.jit(update).lower(state["params"], state["opt_state"], 0, jax.random.key(1), x)

  count, below = products_below_highest(lowered_step("highest", MODELS["mlp"]))
  assert count > 0 and not below
  count, below = products_below_highest(lowered_step("default", MODELS["mlp"]))
  assert len(below) == count > 0
  with pytest.raises(config_lib.ConfigError, match="matmul_precision"):
    config_lib.TrainConfig(matmul_precision="bf16")
  # The mixture's expansion, forward and backward: the products with an operand or
  # result whose last axis is the K = 5 components.
  vamp = MODELS["gated_vampprior"]
  lowered = lowered_step("default", vamp).as_text().splitlines()
  mixture = [l for l in lowered if PRODUCT.search(l) and re.search(r"tensor<(\d+x)+5xf32>", l)]
  assert len(mixture) >= 3 and all(HIGHEST.search(l) for l in mixture)
  assert any(PRODUCT.search(l) and not HIGHEST.search(l) for l in lowered)  # the nets


@contextlib.contextmanager
def emulated_bfloat16_products():
  """Every dot_general below HIGHEST gets its float32 inputs rounded to bfloat16, as a
  TPU's default single pass computes it (the products of the rounded inputs are exact
  in float32, so this is what the TPU returns up to the order of the sums). Yields the
  list of products traced through it (True: rounded).

  A trace made before would bypass the patch (jnp.matmul is itself jitted, its trace
  cached), so inside, every function is traced anew, through the patch."""
  original = lax_internal.dot_general
  products = []

  def rounded(lhs, rhs, *args, precision=None, **kwargs):  # pylint: disable=redefined-outer-name
    chosen = lax_internal.canonicalize_precision(precision)
    full = isinstance(chosen, tuple) and all(p == jax.lax.Precision.HIGHEST for p in chosen)
    products.append(not full)
    if not full:
      lhs, rhs = (a.astype(jnp.bfloat16).astype(a.dtype) if a.dtype == jnp.float32 else a
                  for a in (lhs, rhs))
    return original(lhs, rhs, *args, precision=precision, **kwargs)

  lax_internal.dot_general = rounded
  try:
    with traced_anew():
      yield products
  finally:
    lax_internal.dot_general = original


def posterior_scale_mixture(dim=40, components=500, scale=0.03):
  """A VampPrior at posterior scale: 500 components of sd 0.03 in 40-D whose means sit
  within about 0.03 of two centres (pseudo-inputs that encode alike, so that hundreds
  of components count for each z, beyond the few the density recomputes exactly), and
  z drawn from them."""
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(2, dim))
  mean = (centres[rng.integers(0, 2, components)]
          + scale * rng.normal(size=(components, dim))).astype(np.float32)
  log_var = np.full((components, dim), 2 * np.log(scale), np.float32)
  z = (mean[rng.integers(0, components, 64)]
       + scale * rng.normal(size=(64, dim))).astype(np.float32)
  return distributions.DiagNormalMixture(jnp.asarray(mean), jnp.asarray(log_var)), jnp.asarray(z)


def test_the_guard_keeps_the_vampprior_density_where_bfloat16_would_move_it(monkeypatch):
  """Emulated bfloat16 products move the mixture density's expansion by more than 0.1
  nats per z when it computes at the default precision; at vbayes' (HIGHEST) it does
  not move at all."""
  prior, z = posterior_scale_mixture()
  log_prob = lambda: np.asarray(jax.jit(lambda z: prior.log_prob(z))(z))
  exact = log_prob()
  with emulated_bfloat16_products() as products:
    guarded = log_prob()
    assert products, "the density was not traced through the emulation"
    monkeypatch.setattr(precision, "ESTIMATES", "default")
    unguarded = log_prob()
  np.testing.assert_array_equal(guarded, exact)
  assert np.max(np.abs(unguarded - exact)) > 0.1
