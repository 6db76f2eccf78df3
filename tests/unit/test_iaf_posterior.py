"""The inverse autoregressive flow posterior (Kingma et al. 2016), flow="iaf" behind the
model interface (vbayes/models/flows.py)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import model_checks
from vbayes import config as config_lib, distributions
from vbayes.config import ConfigError
from vbayes.evaluation import grid
from vbayes.models import build, flows
from vbayes.overrides import with_overrides
from vbayes.models.networks import mlp
from vbayes.models.proposals import iaf

DATA = 6
IAF = config_lib.ModelConfig(data_dim=DATA, latent_dim=3,
                             network=mlp.Config(hidden_sizes=(8,), activation="tanh"),
                             proposal=iaf.Config(flow_steps=3, flow_hidden_sizes=(7, 5),
                                                 activation="tanh"))


@functools.cache
def iaf_model(config=IAF):
  return build(config)


@functools.cache
def iaf_posterior(config=IAF, seed=0, scale_weights=1.0):
  """q(z | x) of one image under a freshly initialized model, with the MADE weights
  multiplied by scale_weights (larger: a flow further from the identity) and each step's
  map from the context to its outputs (zero at init) random. Built by one compiled
  program per config (seed and scale_weights are its arguments), once per setting."""
  return (iaf_model(config), *_posterior_program(config)(seed, scale_weights))


@functools.cache
def _posterior_program(config):
  model = iaf_model(config)

  @jax.jit
  def posterior(seed, scale_weights):
    params = model.init(jax.random.key(seed))
    params["encoder"]["steps"] = jax.tree.map(lambda w: w * scale_weights,
                                              params["encoder"]["steps"])
    for t, step in enumerate(params["encoder"]["steps"].values()):  # zero at init
      step["context"] = 0.3 * jax.random.normal(
          jax.random.fold_in(jax.random.key(seed), 100 + t), step["context"].shape)
    x = jax.random.bernoulli(jax.random.key(seed + 1), 0.4, (DATA,)).astype(jnp.float32)
    return params, model.proposal_distribution(params, x)

  return posterior


def test_made_masks_are_autoregressive():
  """Through all layers, output l (m_l and s_l) is connected only to inputs before l in
  the step's order: the paths through the masks' 0/1 patterns, [inputs, outputs] in
  that order, are strictly upper triangular; the first output sees no input, the last
  sees every other one. Odd steps reverse the order."""
  for reverse in (False, True):
    masks = flows.made_masks(4, (6, 5), reverse)
    paths = masks[0]
    for mask in masks[1:]:
      paths = (paths @ mask > 0).astype(np.float32)
    order = np.arange(4)[::-1] if reverse else np.arange(4)
    for half in np.split(paths, 2, axis=1):  # [inputs, outputs]
      reached = half[np.ix_(order, order)]  # rows and columns in the step's order
      assert np.all(np.tril(reached) == 0), reached
      assert reached[:, 0].sum() == 0 and reached[:-1, -1].all()


def test_every_coordinate_of_a_step_reads_the_context():
  """m and s of every coordinate depend on the context h(x), the first in the step's
  order too (it depends on no coordinate of z, and before the context's own map to the
  outputs it was a constant: its bias); z's order is kept (the mask test above). With
  every MADE weight random, the Jacobian of (m, s) with respect to h has no zero row."""
  _, params, q = iaf_posterior()

  @jax.jit
  def jacobians(steps, context):
    steps = jax.tree.map(lambda w: w + 0.3 * jax.random.normal(jax.random.key(5), w.shape),
                         steps)
    z = jax.random.normal(jax.random.key(6), (3,))
    out = []
    for t in range(3):
      masks = flows.made_masks(3, (7, 5), reverse=t % 2 == 1)
      ms = lambda h, t=t, masks=masks: jnp.concatenate(
          flows.made_apply(steps[f"step_{t}"], masks, z, h, "tanh"))
      out.append(jax.jacfwd(ms)(context))
    return out

  for t, jacobian in enumerate(jacobians(params["encoder"]["steps"], q.context)):
    assert jacobian.shape == (6, 7)
    assert np.all(np.abs(np.asarray(jacobian)).sum(axis=1) > 1e-3), (t, jacobian)


def test_the_log_determinant_is_slogdet_of_the_autodiff_jacobian():
  """log q(z) = log N(eps; 0, I) - log |det dz/deps|, with the determinant from
  jnp.linalg.slogdet of jax.jacfwd of the draw, for flows far from the identity."""
  @jax.jit
  def densities(q, seed):
    eps = jax.random.normal(jax.random.key(10 + seed), (3,))
    _, log_q = q.draw_and_log_prob(eps)
    sign, log_det = jnp.linalg.slogdet(jax.jacfwd(q.draw)(eps))
    return log_q, sign, distributions.std_normal_log_prob(eps) - log_det

  for seed in range(3):
    _, _, q = iaf_posterior(seed=seed, scale_weights=3.0)
    log_q, sign, through_slogdet = densities(q, seed)
    assert float(sign) > 0
    np.testing.assert_allclose(log_q, through_slogdet, rtol=1e-5, atol=1e-5)


def test_the_inverse_gives_the_density_of_the_drawn_points():
  """log_prob (each step inverted by fixed-point iteration) at z = draw(eps) equals the
  forward pass's log q, and the draw is not the base Gaussian's (the flow acts)."""
  @jax.jit
  def draws_and_densities(q):
    eps = q.noise(jax.random.key(3), 50)
    z, log_q = q.draw_and_log_prob(eps)
    return z, log_q, q.log_prob(z), q.base.draw(eps)

  _, _, q = iaf_posterior(scale_weights=3.0)
  z, log_q, log_q_through_inverse, base_draw = map(np.asarray, draws_and_densities(q))
  np.testing.assert_allclose(log_q_through_inverse, log_q, rtol=1e-4, atol=1e-4)
  assert np.max(np.abs(z - base_draw)) > 0.1


def test_the_density_through_the_inverse_has_the_forward_passs_gradients():
  """STL and DReG differentiate log q(z) at z = draw(eps) through the inverse (L
  fixed-point iterations per step): its gradients in eps and in q's parameters equal
  those of the log-density the forward pass carries, the same function of both."""
  model, params, _ = iaf_posterior(scale_weights=3.0)

  @jax.jit
  def both_gradients(params):
    x = jax.random.bernoulli(jax.random.key(7), 0.4, (DATA,)).astype(jnp.float32)
    eps = jax.random.normal(jax.random.key(8), (4, 3))
    through_inverse = lambda p, e: jnp.sum(
        model.proposal_distribution(p, x).log_prob(model.proposal_distribution(p, x).draw(e)))
    forward = lambda p, e: jnp.sum(model.proposal_distribution(p, x).draw_and_log_prob(e)[1])
    return [jax.grad(f, argnums=(0, 1))(params, eps) for f in (through_inverse, forward)]

  grads = jax.tree.map(np.asarray, both_gradients(params))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4), *grads)
  assert np.max(np.abs(grads[1][1])) > 0.1  # the eps gradient is not trivially 0


def test_the_density_integrates_to_one_on_a_grid():
  """sum_g q(z_g) * cell area over a 400^2 grid on [-8, 8]^2 is 1 within 1e-3 (the
  midpoint rule's error at this cell size, and the mass outside, which 10^4 draws say is
  none), for a 2-D flow far from the identity (its density evaluated through the inverse)."""
  @jax.jit
  def draws_and_mass(q):
    z_Gx2, log_area = grid.latent_grid(8.0, 400)
    return q.sample(jax.random.key(9), 10_000), jnp.sum(jnp.exp(q.log_prob(z_Gx2) + log_area))

  _, _, q = iaf_posterior(dataclasses.replace(IAF, latent_dim=2), scale_weights=3.0)
  draws, mass = draws_and_mass(q)
  assert np.max(np.abs(np.asarray(draws))) < 7.0
  assert abs(float(mass) - 1.0) < 1e-3


def test_iwae_with_one_sample_is_the_monte_carlo_elbo():
  model = iaf_model()

  @jax.jit
  def params_images_and_noise():
    return (model.init(jax.random.key(4)),
            jax.random.bernoulli(jax.random.key(5), 0.3, (4, DATA)).astype(jnp.float32),
            jax.random.normal(jax.random.key(6), (4, IAF.latent_dim)))

  params, x, eps = params_images_and_noise()
  model_checks.assert_iwae_with_one_sample_is_the_monte_carlo_elbo(model, params, x, eps)


@pytest.mark.parametrize("objective", model_checks.ENCODER_OBJECTIVES,
                         ids=model_checks.objective_id)
def test_every_objective_that_applies_trains_an_iaf_model(objective):
  """Two jitted calls of 50 steps on 4Frames-sized binary data, traced once; the loss
  falls from the first 10 steps to the last 10 and the flow's weights move."""
  config = config_lib.TrainConfig(
      model=dataclasses.replace(IAF, data_dim=4, latent_dim=2,
                                proposal=IAF.proposal.replace(flow_steps=2)),
      data=config_lib.DataConfig(dataset="4frames"), objective=objective, batch_size=20,
      learning_rate=1e-2)
  x = jnp.asarray(np.eye(4, dtype=np.uint8)[np.arange(1000) % 4])
  state, first, second = model_checks.train_two_calls(config, x, steps=50)
  start = model_checks.initial_params(config)["encoder"]["steps"]
  assert np.asarray(second["loss"])[-10:].mean() < np.asarray(first["loss"])[:10].mean()
  moved = jax.tree.map(lambda a, b: np.max(np.abs(np.asarray(a) - np.asarray(b))), start,
                       state["params"]["encoder"]["steps"])
  assert min(jax.tree.leaves(moved)) > 0


@pytest.mark.parametrize("settings, message", [
    ({"objective.kl_estimator": "analytic"}, "no closed form for the standard_normal prior "
     "with the iaf proposal"),
    ({"model.prior": "vamp"}, "the vamp prior is made of the Gaussian encoder's posteriors; "
     "it needs proposal gaussian, got 'iaf'"),
    ({"model.latent_dim_2": "2"}, "a flow posterior is built here for one stochastic layer"),
    ({"objective": "avb", "model.proposal": "iaf"}, "objective 'avb' needs a proposal that "
     "offers implicit; proposal 'iaf' offers density, reparameterized"),
    ({"objective": "prior_is", "model.flow": "iaf"}, "objective 'prior_is' needs a proposal "
     "that offers prior"),
])
def test_an_iaf_model_the_objective_cannot_train_is_one_clear_error(settings, message):
  start = config_lib.TrainConfig(model=dataclasses.replace(IAF, data_dim=4),
                                 data=config_lib.DataConfig(dataset="4frames"),
                                 objective=config_lib.objective_config("elbo", kl_estimator="mc"))
  with pytest.raises(ConfigError, match=message):
    with_overrides(start, settings)
