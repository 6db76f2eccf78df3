"""The published protocol of Burda et al. (2016), Table 1: its staged learning rate and
Adam settings, and its ten rows' configs (experiments/configs/burda_table1.py)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.configs import burda_table1
from vbayes import config as config_lib, optimizers
from vbayes.models import build


def test_the_staged_learning_rate_holds_each_stage_for_its_epochs():
  """Stages (2, 1), (3, 0.5), (1, 0.1) at 4 steps per epoch: steps 0-7 at lr, 8-19 at
  lr / 2, 20-23 at lr / 10, and lr / 10 after the last stage."""
  rate = optimizers.staged_learning_rate(0.01, ((2, 1.0), (3, 0.5), (1, 0.1)), 4)
  rates = np.asarray(jax.vmap(rate)(jnp.arange(30)))
  expected = np.array([0.01] * 8 + [0.005] * 12 + [0.001] * 10, np.float32)
  np.testing.assert_allclose(rates, expected, rtol=1e-6)


def test_adam_takes_steps_of_the_stage_learning_rate():
  """With a constant gradient Adam's bias-corrected step is lr_t * g / (|g| + eps'):
  each update of the staged Adam has the size of its stage's rate."""
  opt = optimizers.adam(1e-3, eps=1e-4, stages=((1, 1.0), (2, 0.1)), steps_per_epoch=2)
  params = jnp.zeros(3)
  grad = jnp.array([1.0, -2.0, 0.5])
  state = opt.init(params)
  sizes = []
  for _ in range(7):
    updates, state = opt.update(grad, state, params)
    params = optax.apply_updates(params, updates)
    sizes.append(float(jnp.max(jnp.abs(updates))))
  expected = [1e-3] * 2 + [1e-4] * 5
  np.testing.assert_allclose(sizes, expected, rtol=1e-3)


def test_the_ten_rows_follow_the_paper():
  study = burda_table1.get_config()
  names = [name for name, _ in study.runs]
  assert names == list(burda_table1.PUBLISHED)
  for name, run in study.runs:
    assert run.batch_size == 20 and run.adam_eps == 1e-4 and run.learning_rate == 1e-3
    assert run.epochs == 3280 == sum(3**i for i in range(8))
    np.testing.assert_allclose([m for _, m in run.learning_rate_stages],
                               [10 ** (-i / 7) for i in range(8)])
    assert (run.data.dataset, run.data.binarization) == ("mnist", "dynamic")
    assert run.eval_k == 5000 and run.model.network.activation == "tanh"
    k = int(name.rsplit("_k", 1)[1])
    objective = run.objective
    assert objective.k == k
    assert (objective.name, getattr(objective, "alpha", None)) == (
        ("renyi", 1.0) if "_vae_" in name else ("iwae", None))


def test_the_architectures_are_the_papers():
  """One layer: 784-200-200-50 (x2 for mean and log-variance) and its mirror. Two:
  q(z1|x) 784-200-200-(2x100), q(z2|z1) 100-100-100-(2x50), p(z1|z2) 50-100-100-(2x100),
  p(x|z1) 100-200-200-784."""
  layer_sizes = lambda net: [net[f"layer_{i}"]["w"].shape for i in range(len(net))]
  one = jax.eval_shape(build(burda_table1.ONE_LAYER).init, jax.random.key(0))
  assert layer_sizes(one["encoder"]) == [(784, 200), (200, 200), (200, 100)]
  assert layer_sizes(one["decoder"]) == [(50, 200), (200, 200), (200, 784)]
  two = jax.eval_shape(build(burda_table1.TWO_LAYERS).init, jax.random.key(0))
  assert layer_sizes(two["encoder"]["bottom"]) == [(784, 200), (200, 200), (200, 200)]
  assert layer_sizes(two["encoder"]["top"]) == [(100, 100), (100, 100), (100, 100)]
  assert layer_sizes(two["prior"]) == [(50, 100), (100, 100), (100, 200)]
  assert layer_sizes(two["decoder"]) == [(100, 200), (200, 200), (200, 784)]


def test_a_config_json_with_stages_reads_back_the_same():
  run = burda_table1.get_config().runs[-1][1]
  assert config_lib.TrainConfig.from_dict(json.loads(run.to_json())) == run
