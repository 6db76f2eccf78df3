"""Convolutional encoder and decoder (vbayes/models/conv_nets.py): flax.linen layers
behind the pure `Net` contract, selected by ModelConfig.network, trained by every
objective that applies."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vbayes import config as config_lib
from vbayes.config import ConfigError
from vbayes.models import build, conv_nets
from vbayes.models.networks import conv
from tests.helpers import model_checks

SIDE, LATENT = 8, 3  # 8x8 images, two stride-2 convolutions: 8 -> 4 -> 2
MODEL = config_lib.ModelConfig(data_dim=SIDE * SIDE, latent_dim=LATENT,
                               network=conv.Config(hidden_sizes=(16,), conv_channels=(4, 8)))


def test_the_parameters_are_a_plain_pytree_and_apply_keeps_leading_axes():
  """The parameters' leaves are arrays (checked as init traces: a value it computes is a
  jax.Array there, a numpy constant is not); the encoder maps a [2, 5] batch of images
  as it maps one image, and the decoder keeps the leading axes too."""
  model = build(MODEL)
  leaves_are_arrays = []

  @jax.jit
  def params_means_and_decoded():
    params = model.init(jax.random.key(0))
    leaves_are_arrays.append(all(isinstance(leaf, jax.Array)
                                 for leaf in jax.tree.leaves(params)))
    x = jax.random.bernoulli(jax.random.key(1), 0.3, (2, 5, SIDE * SIDE)).astype(jnp.float32)
    mean = lambda x: model.proposal_distribution(params, x).mean
    q_mean = mean(x)
    return params, q_mean, mean(x[1, 3]), model.decode(params, q_mean)

  params, q_mean, one_image_mean, decoded = jax.tree.map(np.asarray,
                                                         params_means_and_decoded())
  assert leaves_are_arrays == [True]
  assert params["encoder"]["Conv_0"]["kernel"].shape == (3, 3, 1, 4)
  assert params["decoder"]["ConvTranspose_1"]["kernel"].shape == (3, 3, 4, 1)
  assert q_mean.shape == (2, 5, LATENT)
  np.testing.assert_allclose(q_mean[1, 3], one_image_mean, rtol=1e-5, atol=1e-6)
  assert decoded.shape == (2, 5, SIDE * SIDE)


def test_the_first_convolution_is_a_strided_3x3_correlation():
  """The encoder's first feature map against a loop over output pixels (SAME padding:
  one zero row and column before, as XLA pads an even side for stride 2 and a 3x3
  kernel: total padding 1, after it)."""
  net = conv_nets.conv_encoder(SIDE, (4,), (), "relu")

  @jax.jit
  def params_image_and_output():
    params = net.init(jax.random.key(2), SIDE * SIDE, 5)
    image = jax.random.normal(jax.random.key(3), (SIDE, SIDE))
    return params, image, net.apply(params, image.reshape(-1))

  params, image, out = jax.tree.map(np.asarray, params_image_and_output())
  kernel, bias = params["Conv_0"]["kernel"], params["Conv_0"]["bias"]
  padded = np.pad(image, ((0, 1), (0, 1)))
  want = np.zeros((SIDE // 2, SIDE // 2, 4))
  for i in range(SIDE // 2):
    for j in range(SIDE // 2):
      patch = padded[2 * i:2 * i + 3, 2 * j:2 * j + 3]
      want[i, j] = np.einsum("hw,hwc->c", patch, kernel[:, :, 0]) + bias
  want = np.maximum(want, 0).reshape(-1)
  dense = params["Dense_0"]
  np.testing.assert_allclose(out, want @ dense["kernel"] + dense["bias"],
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("transposed, channels", [(False, (3, 5)), (True, (3, 5)),
                                                   (True, (8, 1))],
                         ids=["strided", "transposed", "transposed_to_one_channel"])
def test_the_convolutions_and_their_gradients_are_laxs(transposed, channels):
  """strided_conv3x3 and transposed_conv3x3 (lax's convolution undifferentiated, patch
  products differentiated) against lax's convolutions as flax's nn.Conv and
  nn.ConvTranspose call them (stride 2, SAME): the patch products' values, both
  gradients and a forward-mode derivative, on a 6x6 image, 3 channels to 5 and (the
  transposed convolution's other form) 8 to 1."""
  c_in, c_out = channels
  numbers = ("NHWC", "HWIO", "NHWC")
  if transposed:
    ours, by_patches = conv_nets.transposed_conv3x3, conv_nets._transposed_by_patches  # pylint: disable=protected-access
    xla = lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=numbers)
  else:
    ours, by_patches = conv_nets.strided_conv3x3, conv_nets._strided_by_patches  # pylint: disable=protected-access
    xla = lambda x, k: jax.lax.conv_general_dilated(x, k, (2, 2), "SAME",
                                                    dimension_numbers=numbers)

  @jax.jit
  def inputs_values_and_derivatives():
    x = jax.random.normal(jax.random.key(7), (2, 6, 6, c_in))
    kernel = jax.random.normal(jax.random.key(8), (3, 3, c_in, c_out))
    cotangent = jax.random.normal(jax.random.key(9), jax.eval_shape(xla, x, kernel).shape)
    grads = [jax.grad(lambda x, k, f=f: jnp.sum(f(x, k) * cotangent), argnums=(0, 1))(x, kernel)
             for f in (ours, xla)]
    tangents = (jax.random.normal(jax.random.key(10), x.shape),
                jax.random.normal(jax.random.key(11), kernel.shape))
    forward_mode = [jax.jvp(f, (x, kernel), tangents)[1] for f in (ours, xla)]
    return x, kernel, by_patches(x, kernel), ours(x, kernel), grads, forward_mode

  with jax.default_matmul_precision("highest"):
    x, kernel, patch_products, ours_under_jit, grads, forward_mode = inputs_values_and_derivatives()
    want = xla(x, kernel)
    assert want.shape == ((2, 12, 12, c_out) if transposed else (2, 3, 3, c_out))
    for got in (ours(x, kernel), patch_products, ours_under_jit):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  for ours_grad, xla_grad in zip(*grads):
    np.testing.assert_allclose(ours_grad, xla_grad, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(*forward_mode, rtol=1e-5, atol=1e-5)


def test_iwae_with_one_sample_is_the_monte_carlo_elbo():
  model = build(MODEL)
  params, x, eps = jax.jit(lambda: (
      model.init(jax.random.key(4)),
      jax.random.bernoulli(jax.random.key(5), 0.3, (4, SIDE * SIDE)).astype(jnp.float32),
      jax.random.normal(jax.random.key(6), (4, LATENT))))()
  model_checks.assert_iwae_with_one_sample_is_the_monte_carlo_elbo(model, params, x, eps)


@pytest.mark.parametrize("objective", [
    config_lib.objective_config("elbo"),
    config_lib.objective_config("iwae", k=4, estimator="dreg"),
    config_lib.objective_config("renyi", k=4),
    config_lib.objective_config("prior_is", k=8)],
    ids=lambda o: o.name)
def test_every_objective_that_applies_trains_a_conv_model(objective):
  """Two jitted calls of 40 steps on 8x8 binary images (a few fixed patterns), traced
  once; the loss falls from the first 10 steps to the last 10."""
  config = config_lib.TrainConfig(model=MODEL, data=config_lib.DataConfig(),
                                  objective=objective, batch_size=20, learning_rate=3e-3)
  config = config.replace_objective(objective)
  patterns = np.random.default_rng(0).random((4, SIDE * SIDE)) < 0.3
  x = jax.device_put(patterns[np.arange(800) % 4].astype(np.uint8))
  _, first, second = model_checks.train_two_calls(config, x, steps=40)
  first_loss, second_loss = np.asarray(first["loss"]), np.asarray(second["loss"])
  assert float(second_loss[-10:].mean()) < float(first_loss[:10].mean())


@pytest.mark.parametrize("changes, message", [
    (dict(data_dim=4), "data_dim 4 is not one"),
    (dict(data_dim=36), "whose side halves 2 times"),
    (dict(network=dict(conv_channels=())), "conv_channels must be positive and at least one"),
])
def test_a_conv_net_that_cannot_fit_is_one_clear_error(changes, message):
  with pytest.raises(ConfigError, match=message):
    if "network" in changes:
      changes = {"network": MODEL.network.replace(**changes["network"])}
    dataclasses.replace(MODEL, **changes)
