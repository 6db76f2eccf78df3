"""The model interface is open: a prior and a likelihood written here, in the test
alone, run through every objective and evaluator, and the estimators' identities hold.

The toy model is linear-Gaussian with a shifted, scaled prior:
    z ~ N(m, diag s^2),   x | z ~ N(W z + b, sigma^2 I)
    log p(x) = log N(x; W m + b, W diag(s^2) W^T + sigma^2 I)
    p(z | x) = N(mu(x), Lambda^{-1}),  Lambda = diag(1 / s^2) + W^T W / sigma^2,
                                      mu(x) = Lambda^{-1} (W^T (x - b) / sigma^2 + m / s^2).
W has orthogonal columns, so Lambda is diagonal and p(z | x) is a linear Gaussian
encoder: the exact posterior is in the proposal family.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from tests.helpers import model_checks
from vbayes import distributions, svi
from vbayes.evaluation import importance_sampling as evaluate
from vbayes.evaluation import grid
from vbayes.objectives import elbo, iwae as iw, prior_is
from vbayes.models import Model, interfaces, nets
from vbayes.models.networks import mlp
from vbayes.models.priors import standard_normal
from vbayes.models.proposals import gaussian, implicit

DATA, LATENT, SIGMA = 5, 2, 0.5
PRIOR_MEAN, PRIOR_SD = np.array([0.5, -0.3]), np.array([0.8, 1.2])


def shifted_normal_prior(mean_L, sd_L) -> interfaces.Prior:
  """p(z) = N(m, diag s^2), fixed."""
  dist = distributions.DiagNormal(jax.device_put(np.asarray(mean_L, np.float32)),
                                  jax.device_put(np.asarray(2 * np.log(sd_L), np.float32)))
  return interfaces.Prior(init=lambda key: None, distribution=lambda params: dist)


def fixed_scale_gaussian(scale: float) -> interfaces.Likelihood:
  """p(x | z) = N(x; f(z), scale^2 I): one density, its batched forms derived by vmap."""
  log_prob = lambda lp, out_D, x_D, mask_D=None: distributions.gaussian_log_prob(
      out_D, jnp.full_like(out_D, math.log(scale)), x_D, mask_D)
  return interfaces.from_log_prob(
      log_prob, mean=lambda lp, out: out,
      sample=lambda lp, key, out: out + scale * jax.random.normal(key, out.shape))


@functools.cache
def toy_model(encoder: bool = True) -> Model:
  """The toy parts as a Model, built once: jitted functions that take it as a static
  argument compile once for all the tests that use them at the same shapes."""
  linear = nets.mlp((), "relu")  # no hidden layer: x W + b
  return Model(data_dim=DATA, latent_dim=LATENT,
               prior=shifted_normal_prior(PRIOR_MEAN, PRIOR_SD), decoder=linear,
               likelihood=fixed_scale_gaussian(SIGMA),
               proposal=gaussian.encoder(linear, DATA, LATENT) if encoder else None)


@pytest.fixture(scope="module")
def toy():
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(DATA, LATENT)))
  w = q * np.array([1.5, 0.9])  # orthogonal columns
  b = rng.normal(size=DATA) * 0.3
  precision = 1 / PRIOR_SD**2 + np.diag(w.T @ w) / SIGMA**2  # diagonal Lambda
  a = (w / SIGMA**2 / precision).T  # mu(x) = a x + c
  c = (PRIOR_MEAN / PRIOR_SD**2 - w.T @ b / SIGMA**2) / precision
  exact_encoder = {"layer_0": {"w": np.concatenate([a.T, np.zeros((DATA, LATENT))], 1),
                               "b": np.concatenate([c, -np.log(precision)])}}
  params = {"decoder": {"layer_0": {"w": w.T, "b": b}}, "encoder": exact_encoder}
  params = jax.tree.map(lambda v: np.asarray(v, np.float32), params)  # host arrays
  z = PRIOR_MEAN + PRIOR_SD * rng.normal(size=(4, LATENT))
  x = z @ w.T + b + SIGMA * rng.normal(size=(4, DATA))
  cov = w @ np.diag(PRIOR_SD**2) @ w.T + SIGMA**2 * np.eye(DATA)
  log_px = scipy.stats.multivariate_normal.logpdf(x, w @ PRIOR_MEAN + b, cov)
  perturbed = jax.tree.map(lambda v: v, params)
  perturbed["encoder"]["layer_0"]["w"] = params["encoder"]["layer_0"]["w"] * 0.8
  perturbed["encoder"]["layer_0"]["b"] = params["encoder"]["layer_0"]["b"] + 0.4
  return {"params": params, "perturbed": perturbed, "x": np.asarray(x, np.float32),
          "log_px": np.asarray(log_px)}


def test_iwae_with_one_sample_is_the_monte_carlo_elbo(toy):
  """L_1 from noise eps equals the one-sample ELBO log p(x, z) - log q(z|x) at the same z."""
  model, params, x = toy_model(), toy["perturbed"], toy["x"]
  eps = jax.jit(lambda: jax.random.normal(jax.random.key(0), (4, LATENT)))()
  model_checks.assert_iwae_with_one_sample_is_the_monte_carlo_elbo(model, params, x, eps,
                                                                 rtol=1e-6)


def test_analytic_elbo_is_the_mean_of_the_monte_carlo_elbo(toy):
  """With the closed-form KL to the shifted prior, the ELBO equals E_q of the MC ELBO,
  within 4 standard errors of 20000 draws."""
  model, params, x = toy_model(), toy["perturbed"], toy["x"][0]
  n = 20000

  @jax.jit
  def mc_and_analytic_elbos():
    eps = jax.random.normal(jax.random.key(1), (n, LATENT))
    one = lambda e, kl: elbo.elbo_from_noise(params, e, x, model=model, kl_estimator=kl)
    return [jax.vmap(lambda e, kl=kl: one(e, kl)["elbo"])(eps) for kl in ("mc", "analytic")]

  mc, analytic = jax.device_get(mc_and_analytic_elbos())
  stderr = float(np.std(mc)) / math.sqrt(n)
  assert abs(float(np.mean(mc) - np.mean(analytic))) < 4 * stderr


def test_every_weight_is_p_of_x_at_the_exact_posterior(toy):
  """q = p(z|x) makes w = p(x, z) / q(z|x) = p(x) for every z: the IWAE bound, the
  importance-sampled log p(x) and the one-sample ELBO with the MC KL all equal the
  closed form."""
  model, params, x = toy_model(), toy["params"], toy["x"]

  @jax.jit
  def iwae_importance_sampled_and_elbo():
    eps = jax.random.normal(jax.random.key(2), (4, 7, LATENT))
    iwae_bound = iw.iwae_bounds(params, eps, x, model=model)["bound"]
    log_px, _ = evaluate.importance_sampled_log_likelihood(params, jax.random.key(3), x,
                                                           model=model, k=50, chunk=10)
    elbo_bound = elbo.elbo_loss(params, jax.random.key(4), x, model=model,
                                kl_estimator="mc")[1]["elbo"]
    return iwae_bound, log_px, elbo_bound

  iwae_bound, log_px, elbo_bound = iwae_importance_sampled_and_elbo()
  np.testing.assert_allclose(iwae_bound, toy["log_px"], rtol=1e-5)
  np.testing.assert_allclose(log_px, toy["log_px"], rtol=1e-5)
  np.testing.assert_allclose(elbo_bound, np.mean(toy["log_px"]), rtol=1e-5)


def test_iwae_bound_rises_with_k_to_log_p_of_x(toy):
  """E[L_1] < E[L_10] < E[L_100] <= log p(x) with a perturbed encoder, each mean of
  1000 draws and the steps larger than 4 standard errors of their difference."""
  model, params, x = toy_model(), toy["perturbed"], toy["x"][:1]

  @jax.jit
  def bounds_for_each_k():
    """1000 draws of L_k for k = 1, 10, 100, the draws of k from key(10 + i)."""
    bounds_of = lambda eps: iw.iwae_bounds(params, eps, jnp.repeat(x, 1000, axis=0),
                                           model=model)["bound"]
    return [bounds_of(jax.random.normal(jax.random.key(10 + i), (1000, k, LATENT)))
            for i, k in enumerate((1, 10, 100))]

  means, errors = [], []
  for bounds in jax.device_get(bounds_for_each_k()):
    means.append(float(np.mean(bounds)))
    errors.append(float(np.std(bounds)) / math.sqrt(1000))
  for lo, hi, e_lo, e_hi in zip(means, means[1:], errors, errors[1:]):
    assert hi - lo > 4 * math.hypot(e_lo, e_hi)
  assert means[-1] < toy["log_px"][0] + 4 * errors[-1]
  assert toy["log_px"][0] - means[-1] < 0.5 * (means[1] - means[0])  # close to log p(x)


def test_stl_and_dreg_encoder_gradients_vanish_at_the_exact_posterior(toy):
  """At q = p(z|x) the weights are constant and the path derivative of log w is zero:
  STL's and DReG's encoder gradients vanish on the toy parts, the plain one's does not."""
  model, x = toy_model(), toy["x"]

  @jax.jit
  def encoder_gradients(params):
    """Each estimator's gradient of the encoder's parameters, at the key(5) draws."""
    key = jax.random.key(5)
    loss = lambda p, estimator: iw.iwae_loss(p, key, x, model=model, k=8,
                                             estimator=estimator)[0]
    return {estimator: jax.grad(functools.partial(loss, estimator=estimator))(params)["encoder"]
            for estimator in iw.ESTIMATORS}

  largest = {estimator: max(float(np.max(np.abs(g))) for g in jax.tree.leaves(grads))
             for estimator, grads in jax.device_get(encoder_gradients(toy["params"])).items()}
  assert largest["reparam"] > 1e-3 and largest["stl"] < 1e-4 and largest["dreg"] < 1e-4


def test_prior_importance_sampling_with_the_shifted_prior(toy):
  """Without an encoder the prior proposes, for training (prior_is_loss) and for
  evaluation: both estimate log p(x), the mean of 8 runs within 4 standard errors
  (plus the bias of log of a mean, below 0.01 nats at this k)."""
  model, params, x = toy_model(encoder=False), {"decoder": toy["params"]["decoder"]}, toy["x"]
  assert set(jax.eval_shape(lambda: model.init(jax.random.key(0)))) == {"decoder"}

  @jax.jit
  def evaluation_runs_and_training_bound(seeds):
    """The evaluator's estimate from each seed's key [8, B], and prior_is_loss's bound."""
    runs = jax.vmap(lambda seed: evaluate.importance_sampled_log_likelihood(
        params, jax.random.key(seed), x, model=model, k=4000, chunk=400)[0])(seeds)
    _, metrics = prior_is.prior_is_loss(params, jax.random.key(6), x, model=model, k=4000)
    return runs, metrics["prior_is_bound"]

  runs, prior_is_bound = jax.device_get(evaluation_runs_and_training_bound(20 + np.arange(8)))
  error = runs.std(axis=0, ddof=1) / math.sqrt(8)
  np.testing.assert_array_less(np.abs(runs.mean(axis=0) - toy["log_px"]), 4 * error + 0.01)
  assert abs(float(prior_is_bound) - np.mean(toy["log_px"])) < 0.2
  results = evaluate.evaluate(params, jax.random.key(7), np.asarray(x), model=model,
                              binarization="fixed", k=400, batch_size=4)  # fixed: x as it is
  assert results["proposal"] == "prior" and results["active_units"] is None


def test_quadrature_and_evaluation_with_the_toy_parts(toy):
  """Grid quadrature over the shifted prior equals the closed form; `evaluate` with the
  exact encoder reports -log p(x), and an ELBO equal to it within its Monte Carlo error."""
  model, params, x = toy_model(), toy["params"], toy["x"]
  quad = grid.quadrature_log_likelihood(params, x, model=model, limit=6.0, points=512)
  np.testing.assert_allclose(quad, toy["log_px"], atol=2e-3)
  results = evaluate.evaluate(params, jax.random.key(8), np.asarray(x), model=model,
                              binarization="fixed", k=100, batch_size=4,  # x as it is
                              quadrature={"limit": 6.0, "points": 512})
  np.testing.assert_allclose(results["test_nll"], -np.mean(toy["log_px"]), rtol=1e-5)
  # Its ELBO is E_q log p(x|z) over the same k samples minus the analytic KL: exact in
  # expectation, with the standard error of the k-sample mean of log p(x|z).
  @jax.jit
  def log_likelihood_variances():
    q = model.proposal_distribution(params, x)
    z = q.sample(jax.random.key(10), 1000)
    return jnp.var(model.log_likelihood_of_samples(params, z, x), axis=1)

  error = math.sqrt(float(np.mean(jax.device_get(log_likelihood_variances()))) / (100 * len(x)))
  assert abs(results["test_elbo"] - np.mean(toy["log_px"])) < 4 * error
  np.testing.assert_allclose(results["test_nll_quadrature"], -np.mean(toy["log_px"]), atol=2e-3)


def test_stochastic_vi_finds_the_toy_posterior(toy):
  """Stochastic VI against the shifted prior reaches ELBO = log p(x), the value only the
  exact posterior attains: the mean of the last 200 steps' estimates (16 samples each)
  is within 4 of their standard errors of log p(x), plus 0.01 nats for Adam's jitter."""
  model, params, x = toy_model(), toy["params"], toy["x"][:2]
  _, _, trace = svi.fit_posterior(params, jax.random.key(9), x, np.ones(DATA, np.float32),
                                  model=model, steps=1500, num_samples=16, learning_rate=2e-2)
  trace = np.asarray(trace)
  last = trace[-200:]
  final, error = last.mean(axis=0), last.std(axis=0) / math.sqrt(200)
  np.testing.assert_array_less(final, toy["log_px"][:2] + 4 * error)
  np.testing.assert_array_less(toy["log_px"][:2] - final, 4 * error + 0.01)
  assert np.all(trace[0] < toy["log_px"][:2] - 0.5)  # it did have to move


def test_every_registered_objective_trains_the_toy_model(toy):
  """The training loop runs each objective of the registry on the toy parts (with the
  encoder the objective trains: Gaussian, none, or an implicit one for AVB), and the
  loss falls from the first 20 of 200 steps to the last 20."""
  from vbayes import config as config_lib, objectives
  from vbayes.training import step as training_step

  x = np.tile(toy["x"], (250, 1))  # 1000 images: 100 steps of 10 per epoch
  for name, module in objectives.REGISTRY.items():
    proposal_name = module.Config.proposal
    proposal = {"gaussian": gaussian.encoder(nets.mlp((), "relu"), DATA, LATENT),
                "implicit": implicit.encoder((8,), "relu", DATA, LATENT, 2),
                "prior": None}[proposal_name]
    model = dataclasses.replace(toy_model(), proposal=proposal)
    config = config_lib.TrainConfig(
        model=config_lib.ModelConfig(data_dim=DATA, latent_dim=LATENT, likelihood="gaussian",
                                     network=mlp.Config(hidden_sizes=()), proposal=proposal_name),
        data=config_lib.DataConfig(dataset="mnist", binarization="none"), objective=name,
        batch_size=10, learning_rate=1e-2)
    chunk = training_step.make_train_chunk(training_step.make_update(config, model), batch_size=10,
                                       steps_per_call=100, steps_per_epoch=100,
                                       binarization="fixed")  # fixed: x as it is
    init = jax.jit(training_step.init_state, static_argnums=(1, 2))
    state = init(jax.random.key(0), config, model)
    state, first = chunk(state, x, jax.random.key(1), jax.random.key(2))
    state, second = chunk(state, x, jax.random.key(1), jax.random.key(2))
    losses = (float(np.asarray(first["loss"])[:20].mean()),
              float(np.asarray(second["loss"])[-20:].mean()))
    assert np.all(np.isfinite(losses)) and losses[1] < losses[0], (name, losses)


def test_the_public_api_resolves_every_name():
  """vbayes/__init__.py's names each load the object they document."""
  import vbayes
  from vbayes import config as config_lib, models
  from vbayes.evaluation import importance_sampling as evaluate_lib
  from vbayes.training import loop as training_loop

  assert vbayes.TrainConfig is config_lib.TrainConfig and vbayes.Model is models.Model
  assert vbayes.run is training_loop.run and vbayes.evaluate_test_set is evaluate_lib.evaluate
  for name in vbayes.__all__:
    assert getattr(vbayes, name) is not None, name
  with pytest.raises(AttributeError):
    vbayes.no_such_name  # pylint: disable=pointless-statement


def test_evaluation_falls_back_to_a_monte_carlo_kl_without_a_closed_form(toy):
  """A prior that kl_divergence has no closed form for (the shifted prior behind a
  Broadcast wrapper): evaluate's KL is the mean of log q - log p over 1000 draws per
  image, within 5 standard errors of the closed form of the unwrapped prior."""
  closed = toy_model()
  dist = closed.prior.distribution(None)
  opaque = dataclasses.replace(closed, prior=interfaces.Prior(
      init=lambda key: None, distribution=lambda params: distributions.Broadcast(dist, ())))
  params, x = toy["perturbed"], toy["x"]
  got = evaluate.evaluate(params, jax.random.key(11), x, model=opaque, binarization="fixed",
                          k=10, batch_size=4)["test_kl"]

  @jax.jit
  def closed_form_kls_and_spreads():
    """Each image's closed-form KL and the sd of log q - log p over its 1000 draws."""
    q = closed.proposal_distribution(params, x)
    z = q.sample(jax.random.key(12), 1000)
    return (distributions.kl_divergence(q, dist),
            jnp.std(q.log_prob(z) - dist.log_prob(z), axis=-1))

  kls, spreads = jax.device_get(closed_form_kls_and_spreads())
  want, spread = float(np.mean(kls)), float(np.mean(spreads))
  assert abs(got - want) < 5 * spread / math.sqrt(1000 * len(x))


def test_the_elbo_kl_warm_up_weights_the_kl_and_still_reports_the_bound(toy):
  """With kl_warmup_steps W the loss at step t is beta_t KL - E_q log p(x|z), beta_t =
  min(1, (t + 1) / W); the reported elbo is E_q log p(x|z) - KL at every step."""
  model, params, x = toy_model(), toy["perturbed"], toy["x"]
  loss = jax.jit(lambda step: elbo.elbo_loss(params, jax.random.key(11), x, step, model=model,
                                             kl_warmup_steps=4))
  for step, beta in ((0, 0.25), (2, 0.75), (10, 1.0)):
    value, metrics = jax.device_get(loss(step))
    np.testing.assert_allclose(value, beta * metrics["kl"] - metrics["log_likelihood"],
                               rtol=1e-6)
    np.testing.assert_allclose(metrics["elbo"], metrics["log_likelihood"] - metrics["kl"],
                               rtol=1e-6)
  assert float(loss(0)[0]) < float(loss(10)[0])  # the KL is positive and weighted less


def test_run_trains_resumes_and_evaluates_a_model_of_parts_written_here(tmp_path):
  """vbayes.run takes a Model (or a function of config.model that builds one): the toy
  parts above train in a workdir, resume from its checkpoint with more epochs, are
  evaluated (test NLL and the 2-D quadrature) and restored, as a registered model is.
  Evaluated with the toy's own prior: the restored parameters under the toy model give
  the run's quadrature log p(x), which N(0, I) would not."""
  from vbayes import config as config_lib, data as data_lib
  from vbayes.evaluation import grid as grid_lib
  from vbayes.training import loop as training_loop

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(200, DATA)).astype(np.uint8)
  data = data_lib.ImageData(train=images[:160], test=images[160:], image_shape=(1, DATA),
                            binarization="none")
  config = config_lib.TrainConfig(
      model=config_lib.ModelConfig(data_dim=DATA, latent_dim=LATENT, likelihood="gaussian",
                                   network=mlp.Config(hidden_sizes=())),
      data=config_lib.DataConfig(dataset="mnist", binarization="none"), batch_size=20,
      epochs=2, steps_per_call=4, eval_k=16, quadrature_points=64, learning_rate=1e-2)
  built = []
  builder = lambda model_config: built.append(model_config) or toy_model()
  lines = []
  first = training_loop.run(config, tmp_path, data=data, model=builder, log=lines.append)
  assert built == [config.model] and first["step"] == 16
  second = training_loop.run(dataclasses.replace(config, epochs=3), tmp_path, data=data,
                             model=toy_model(), log=lines.append)
  assert any(line.startswith("resumed from step 16") for line in lines)
  assert second["step"] == 24 and np.isfinite(second["test_nll"])
  params = training_loop.restore_params(tmp_path, config, model=toy_model())
  x = np.asarray(data.test, np.float32) / 255.0
  standard = dataclasses.replace(toy_model(), prior=standard_normal.prior(LATENT))
  models, same_as_the_run = (toy_model(), standard), (True, False)

  @jax.jit
  def quadrature_under_each_model(params):
    return [grid_lib.quadrature_log_likelihood(params, x, model=model, limit=5.0, points=64)
            for model in models]

  for log_px, same in zip(jax.device_get(quadrature_under_each_model(params)), same_as_the_run):
    got = -float(np.mean(log_px))
    assert (abs(got - second["test_nll_quadrature"]) < 1e-3) == same, (got, second)
