"""The jitted training chunk: compiled once, epoch order, learning, resume (sharding:
tests/system/test_sharded.py)."""

import dataclasses
import json
import os
import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vbayes import config as config_lib, data as data_lib
from vbayes.training import checkpoint
from vbayes.training import chunks, interrupts
from vbayes.training import loop as training_loop
from vbayes.training import step as training_step
from vbayes.objectives import avb, gradient_step, prior_is
from vbayes.models.networks import mlp
from vbayes.models.proposals import implicit



def small_config(**overrides) -> config_lib.TrainConfig:
  model = config_lib.ModelConfig(data_dim=4, latent_dim=2, network=mlp.Config(hidden_sizes=(16,)))
  defaults = dict(model=model, data=config_lib.DataConfig(dataset="4frames"), batch_size=20,
                  epochs=2, steps_per_call=10, eval_k=8, quadrature_points=64,
                  learning_rate=3e-3)
  return config_lib.TrainConfig(**{**defaults, **overrides})


def make_chunk(config, steps_per_epoch, objective=None):
  update = (training_step.make_update(config) if objective is None
            else gradient_step.make_update(objective, config))
  chunk = training_step.make_train_chunk(
      update,
      batch_size=config.batch_size,
      steps_per_call=config.steps_per_call, steps_per_epoch=steps_per_epoch,
      binarization="fixed")
  return chunk, training_step.init_state(jax.random.key(0), config)


def test_train_chunk_is_traced_once_and_lowers_the_loss():
  config = small_config()
  images = jnp.asarray(data_lib.four_frames())
  chunk, state = make_chunk(config, steps_per_epoch=len(images) // config.batch_size)
  losses = []
  for _ in range(5):
    state, metrics = chunk(state, images, jax.random.key(1), jax.random.key(2))
    losses.append(float(metrics["loss"].mean()))
  assert chunk._cache_size() == 1  # pylint: disable=protected-access
  assert int(state["step"]) == 5 * config.steps_per_call
  assert losses[-1] < losses[0] - 0.1


def test_each_epoch_visits_every_image_once():
  n, bits = 60, 6
  index_images = ((np.arange(n)[:, None] >> np.arange(bits)) & 1).astype(np.uint8)  # row i = i

  def record_rows(params, key, x_BxD, step):
    del key, step
    loss = jnp.sum(params["encoder"]["layer_0"]["b"] ** 2)
    return loss, {"rows": x_BxD}

  config = small_config(model=config_lib.ModelConfig(data_dim=bits,
                                                     network=mlp.Config(hidden_sizes=())),
                        batch_size=6, steps_per_call=5)
  chunk, state = make_chunk(config, steps_per_epoch=10, objective=record_rows)
  seen = []
  for _ in range(4):  # two epochs of two calls each
    state, metrics = chunk(state, jnp.asarray(index_images), jax.random.key(1), jax.random.key(2))
    rows = np.asarray(metrics["rows"]).reshape(-1, bits).astype(int)
    seen.append(rows @ (1 << np.arange(bits)))
  epoch0, epoch1 = np.concatenate(seen[:2]), np.concatenate(seen[2:])
  assert sorted(epoch0) == list(range(n)) and sorted(epoch1) == list(range(n))
  assert not np.array_equal(epoch0, epoch1)  # reshuffled each epoch


def _final_params(workdir, config):
  ckpt = checkpoint.Checkpointer(Path(workdir) / "checkpoints")
  like = training_step.init_state(jax.random.key(0), config)
  state, _ = ckpt.restore(like, jax.random.key(0))
  ckpt.close()
  return state


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(tmp_path):
  """Also across learning-rate stages: the split run resumes in the second of three."""
  full = small_config(epochs=4, learning_rate_stages=((1, 1.0), (2, 0.3), (1, 0.1)))
  training_loop.run(full, tmp_path / "full", log=lambda _: None)
  training_loop.run(dataclasses.replace(full, epochs=2), tmp_path / "split", log=lambda _: None)
  training_loop.run(full, tmp_path / "split", log=lambda _: None)  # resumes at epoch 2
  a, b = _final_params(tmp_path / "full", full), _final_params(tmp_path / "split", full)
  assert int(a["step"]) == int(b["step"]) == 4 * 50
  jax.tree.map(np.testing.assert_array_equal, a, b)
  steps = [r["step"] for r in
           map(json.loads, (tmp_path / "split" / "metrics.jsonl").read_text().splitlines())
           if "train_loss" in r]
  assert steps == sorted(set(steps))  # no step logged twice after the resume


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_after_a_checkpoint_from_which_it_resumes(tmp_path, signal_number):
  """SIGTERM or SIGINT in the middle of training (here sent at the first epoch's end): the
  run saves the state of the chunk it is in, says so in one RunInterrupted, and the same
  run again resumes there and ends with the uninterrupted run's parameters."""
  config = small_config(epochs=3)
  training_loop.run(config, tmp_path / "full", log=lambda _: None)

  def signal_once(step, params):
    del params
    if step == 50:
      os.kill(os.getpid(), signal_number)
    return {}

  before = signal.getsignal(signal_number)
  with pytest.raises(interrupts.RunInterrupted,
                     match=f"{signal_number.name} stopped the run at step 60 .*run the same "
                     "command again to resume"):
    training_loop.run(config, tmp_path / "split", log=lambda _: None, epoch_hook=signal_once)
  assert signal.getsignal(signal_number) is before  # the handler before the run, again
  steps = sorted(int(p.name) for p in (tmp_path / "split" / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert steps[-1] == 60
  training_loop.run(config, tmp_path / "split", log=lambda _: None)
  a, b = _final_params(tmp_path / "full", config), _final_params(tmp_path / "split", config)
  assert int(a["step"]) == int(b["step"]) == 150
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_a_nan_stops_training_with_a_clear_error_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch):
  """An AVB run whose update turns NaN from step 60 on: training stops at the next
  logging point, naming the last good checkpoint (step 50), and writes none after."""
  config = small_config(
      epochs=3, steps_per_call=10,
      model=config_lib.ModelConfig(data_dim=4, latent_dim=2, network=mlp.Config(hidden_sizes=(16,)),
                                   proposal=implicit.Config(hidden_sizes=(16,))),
      objective=avb.Config(adversary_hidden_sizes=(16,), samples=2))
  real_make_update = training_step.make_update

  def poisoned(config, model=None, steps_per_epoch=None):
    update = real_make_update(config, model, steps_per_epoch)

    def update_with_nan(params, opt_state, step, key, x):
      params, opt_state, metrics = update(params, opt_state, step, key, x)
      bad = jnp.where(step >= 60, jnp.nan, 0.0)
      return jax.tree.map(lambda p: p + bad, params), opt_state, {**metrics,
                                                                  "loss": metrics["loss"] + bad}
    return update_with_nan

  monkeypatch.setattr(training_step, "make_update", poisoned)
  data = data_lib.load(config.data)
  with pytest.raises(chunks.TrainingDiverged, match=r"by step 70.*\(step 50\) is kept"):
    training_loop.run(config, tmp_path / "run", data=data, log=lambda line: None)
  kept = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir()
                if p.name.isdigit())
  assert kept == [50]
  params = training_loop.restore_params(tmp_path / "run", config)
  assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(params))


def test_prior_is_configs_have_no_encoder_and_old_ones_read_the_same():
  """prior_is trains the decoder alone: its model's proposal is the prior whether the
  config says so, leaves the default, or was written before encoder "none" existed; the
  parameters have no encoder either."""
  new = config_lib.TrainConfig(objective=prior_is.Config(k=4))
  assert new.model.proposal.name == "prior"
  old_json = json.loads(new.to_json())
  old_json["model"] = {"data_dim": 784, "latent_dim": 2, "hidden_sizes": [500, 500],
                       "activation": "relu", "likelihood": "bernoulli", "min_scale": 0.01,
                       "encoder": "gaussian", "noise_dim": 0, "prior": "standard_normal",
                       "num_pseudo_inputs": 500}  # the flat model config.json held before
  del old_json["objective"]
  old_json.update(objective="prior_is", k=4, estimator="reparam", kl_estimator="analytic",
                  kl_warmup_steps=0, avb={})
  assert config_lib.TrainConfig.from_dict(old_json) == new
  assert "encoder" not in training_step.init_state(jax.random.key(0), new)["params"]
  with pytest.raises(config_lib.ConfigError, match="objective 'prior_is' needs a proposal that "
                     "offers prior; proposal 'implicit' offers implicit, reparameterized"):
    config_lib.TrainConfig(objective="prior_is",
                           model=config_lib.ModelConfig(proposal="implicit"))


def test_normalized_gradients_are_each_tensor_over_its_norm():
  """normalize_gradients: each leaf of the gradient divided by its L2 norm (+1e-7) before
  Adam. Two steps whose gradients differ 1000-fold in scale give optax.adam's steps on
  the gradients normalized by hand, and not plain Adam's (whose second step the first
  step's small moments would not scale alike)."""
  import optax  # pylint: disable=import-outside-toplevel
  from vbayes import optimizers  # pylint: disable=import-outside-toplevel
  params = {"a": jnp.ones((3,)), "b": jnp.ones((2, 2))}
  g1 = {"a": jnp.array([3.0, 0.0, 4.0]), "b": jnp.array([[1.0, 0.5], [0.0, 0.2]])}
  g2 = {"a": jnp.array([0.0, 4000.0, 3000.0]), "b": jnp.array([[0.0, 600.0], [800.0, 0.0]])}
  normalize = lambda g: jax.tree.map(lambda x: x / (jnp.linalg.norm(x) + 1e-7), g)

  def two_steps(opt, grads):
    state = opt.init(params)
    out = []
    for g in grads:
      updates, state = opt.update(g, state, params)
      out.append(updates)
    return out

  got = two_steps(optimizers.adam(0.1, normalize_gradients=True), [g1, g2])
  expected = two_steps(optax.adam(0.1), [normalize(g1), normalize(g2)])
  plain = two_steps(optax.adam(0.1), [g1, g2])
  jax.tree.map(lambda u, e: np.testing.assert_allclose(u, e, rtol=1e-5), got, expected)
  assert not np.allclose(got[1]["a"], plain[1]["a"], rtol=1e-3)
