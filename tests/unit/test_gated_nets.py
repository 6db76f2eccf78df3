"""Tomczak & Welling's (2018) parts: gated dense nets (ModelConfig.network "gated"), the
encoder's clipped log-variance, and the VampPrior's clipped pseudo-inputs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import configs
from vbayes import config as config_lib
from vbayes.config import ConfigError
from vbayes.models import build, nets
from vbayes.models.networks import gated
from vbayes.models.priors import two_layer
from vbayes.models.priors import vamp as vamp_prior
from vbayes.models.proposals import gaussian

MODEL = config_lib.ModelConfig(data_dim=6, latent_dim=2, network=gated.Config(hidden_sizes=(5, 4)))


def test_a_gated_layer_is_a_linear_map_times_a_sigmoid_gate():
  """Each hidden layer h = (x W1 + b1) * sigmoid(x W2 + b2), written out with numpy from
  the parameters (columns :H of the layer's weight the linear map, H: the gate), then a
  linear output layer; leading axes kept."""
  net = nets.gated_mlp((5, 4))

  @jax.jit
  def params_input_and_output():
    params = net.init(jax.random.key(0), 6, 3)
    params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(1), a.shape),
                          params)  # non-zero biases
    x = jax.random.normal(jax.random.key(2), (2, 7, 6))
    return params, x, net.apply(params, x)

  params, x, output = jax.tree.map(np.asarray, params_input_and_output())
  h = x
  for i, width in enumerate((5, 4)):
    w, b = (params[f"layer_{i}"][name] for name in ("w", "b"))
    assert w.shape[1] == 2 * width
    h = (h @ w[:, :width] + b[:width]) / (1 + np.exp(-(h @ w[:, width:] + b[width:])))
  expected = h @ params["layer_2"]["w"] + params["layer_2"]["b"]
  np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)


def test_gated_weights_are_he_normal():
  """w ~ N(0, 2 / fan_in): the sample sd of a 784 x 2*300 layer within 2% of sqrt(2/784)
  (360 000 draws: the sd's relative error is about 0.1%), biases zero."""
  layer = jax.jit(lambda: nets.gated_mlp((300,)).init(jax.random.key(0), 784, 10)["layer_0"])()
  assert float(np.std(np.asarray(layer["w"]))) == pytest.approx(np.sqrt(2 / 784), rel=0.02)
  assert not np.any(np.asarray(layer["b"]))


def test_the_encoder_log_variance_is_clipped():
  """With log_var_limits (lo, hi), q's log-variance stays in [lo, hi] however large
  the net's output, and equals it inside."""
  clipped = dataclasses.replace(MODEL, proposal=gaussian.Config(log_var_limits=(-1.0, 0.5)))

  @jax.jit
  def free_and_clipped_log_var():
    params = build(MODEL).init(jax.random.key(0))
    x = 30.0 * jax.random.normal(jax.random.key(1), (50, 6))  # large outputs either side
    return (build(MODEL).proposal_distribution(params, x).log_var,
            build(clipped).proposal_distribution(params, x).log_var)

  free, got = (np.asarray(a) for a in free_and_clipped_log_var())
  assert free.min() < -1.0 and free.max() > 0.5
  np.testing.assert_allclose(got, np.clip(free, -1.0, 0.5), rtol=1e-6)
  with pytest.raises(ConfigError, match="log_var_limits"):
    gaussian.Config(log_var_limits=(1.0, -1.0))
  with pytest.raises(ConfigError, match="one-layer Gaussian encoder"):
    dataclasses.replace(clipped, prior=two_layer.Config(latent_dim_2=2))


def test_the_vampprior_sees_its_pseudo_inputs_clipped():
  """pseudo_input_init (mean, sd) sets where they start; with pseudo_input_limits the
  prior is the mixture of q(z | clip(u)) (the same as the unclipped prior given the
  clipped parameters), and the gradient of an outside entry is zero (a hardtanh)."""
  vamp = dataclasses.replace(MODEL, prior=vamp_prior.Config(num_pseudo_inputs=300,
                                                            pseudo_input_init=(0.05, 0.01)))
  limited = dataclasses.replace(vamp, prior=vamp.prior.replace(pseudo_input_limits=(0.0, 1.0)))

  @jax.jit
  def pseudo_inputs_log_priors_and_gradient():
    """The initial pseudo-inputs u; with two entries moved outside [0, 1], the limited
    prior's log-density, the unclipped prior's given clip(u), and the first's gradient."""
    params = build(limited).init(jax.random.key(0))
    u = params["prior"]["pseudo_inputs"]
    params["prior"]["pseudo_inputs"] = u.at[0, 0].set(-3.0).at[1, 1].set(4.0)
    z = jax.random.normal(jax.random.key(1), (9, 2))
    clipped = {**params, "prior": {"pseudo_inputs": jnp.clip(params["prior"]["pseudo_inputs"],
                                                             0.0, 1.0)}}
    grad = jax.grad(lambda p: build(limited).log_prior(p, z).sum())(params)
    return (u, build(limited).log_prior(params, z), build(vamp).log_prior(clipped, z),
            grad["prior"]["pseudo_inputs"])

  u, log_prior_limited, log_prior_clipped, g = (
      np.asarray(a) for a in pseudo_inputs_log_priors_and_gradient())
  assert float(u.mean()) == pytest.approx(0.05, abs=0.002)
  assert float(u.std()) == pytest.approx(0.01, rel=0.05)
  np.testing.assert_allclose(log_prior_limited, log_prior_clipped, rtol=1e-6)
  assert g[0, 0] == 0 and g[1, 1] == 0 and float(np.abs(g[2]).sum()) > 0


def test_the_tomczak_welling_study_is_the_published_protocol():
  """The config states the paper's Table 2 setup: L=40, gated 300-300 nets, log-variance
  in [-6, 2], K=500 pseudo-inputs in [0, 1] from N(0.05, 0.01^2), the ELBO with the Monte
  Carlo KL and a 100-epoch warm-up, Adam 5e-4, batch 100, up to 2000 epochs with
  patience 50 after the warm-up, IS k=5000."""
  study = configs.load("tomczak_welling")
  runs = dict(study.runs)
  published = configs.module("tomczak_welling").PUBLISHED
  assert set(published) == {"vae_standard", "vae_vampprior"}
  for name in published:  # each with a variant trained by the authors' code's optimizer
    assert runs[f"{name}_normalized_gradients"] == dataclasses.replace(
        runs[name], normalize_gradients=True)
    assert not runs[name].normalize_gradients
  for name, run in runs.items():
    m = run.model
    assert (m.latent_dim, m.network, m.proposal) == (
        40, gated.Config(hidden_sizes=(300, 300)), gaussian.Config(log_var_limits=(-6.0, 2.0)))
    assert run.data.dataset == "binarized_mnist" and run.data.validation == "split"
    assert run.objective.name == "elbo" and run.objective.kl_estimator == "mc"
    assert run.objective.kl_warmup_steps == 100 * 50_000 // run.batch_size
    assert (run.learning_rate, run.batch_size, run.epochs, run.eval_k) == (5e-4, 100, 2000,
                                                                           5000)
    assert (run.early_stopping_patience, run.early_stopping_from_epoch) == (50, 100)
    assert m.prior.name == ("vamp" if name.startswith("vae_vampprior") else "standard_normal")
  assert runs["vae_vampprior"].model.prior == vamp_prior.Config(
      num_pseudo_inputs=500, pseudo_input_init=(0.05, 0.01), pseudo_input_limits=(0.0, 1.0))
