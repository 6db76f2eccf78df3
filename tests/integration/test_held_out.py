"""The held-out curve (vbayes/training/held_out.py): validation ELBO at every epoch, an
IS bound every few, the best checkpoint kept, overfitting visible."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from vbayes import config as config_lib, data as data_lib, keys
from vbayes.evaluation import importance_sampling as evaluate_lib
from vbayes.training import checkpoint as checkpoint_lib, held_out, loop, metrics_io
from vbayes.training import step as training_step
from vbayes.models.networks import mlp
from tests.helpers.command_line import run_main, succeeded

pytestmark = pytest.mark.slow


def memorizable(seed=0, train=20, validation=100, pixels=16):
  """Uniform random binary images: nothing generalizes (the best model of the data is
  16 log 2 = 11.09 nats per image), so a net that fits 20 training images overfits."""
  rng = np.random.default_rng(seed)
  draw = lambda n: (rng.random((n, pixels)) < 0.5).astype(np.uint8)
  return data_lib.ImageData(train=draw(train), test=draw(100), validation=draw(validation),
                            image_shape=(4, 4), binarization="fixed")


def config(epochs=40):
  return config_lib.TrainConfig(
      model=config_lib.ModelConfig(data_dim=16, latent_dim=4,
                                   network=mlp.Config(hidden_sizes=(128, 128))),
      data=config_lib.DataConfig(dataset="4frames"), batch_size=10, steps_per_call=2,
      learning_rate=3e-3, epochs=epochs, eval_k=10, validation_is_k=10,
      validation_is_every_epochs=20, quadrature_points=64)


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("held_out") / "run"
  data = memorizable()
  loop.run(config(), workdir, data=data, log=lambda line: None)
  return workdir, data, metrics_io.read_metrics(workdir)


def test_the_curve_shows_overfitting_and_keeps_the_best_checkpoint(overfit_run):
  """Training loss falls below the 11.09 nats no model of uniform pixels beats on new
  images, while the validation -ELBO rises past its minimum: the best checkpoint is
  an earlier step than the last, and holds the parameters whose validation ELBO was
  the best recorded (re-evaluated with the same key: equal)."""
  workdir, data, records = overfit_run
  held = [r for r in records if "validation_elbo" in r]
  assert [r["step"] for r in held] == list(range(2, 81, 2))  # every epoch (2 steps)
  train = [r["train_loss"] for r in records if "train_loss" in r]
  curve = np.array([-r["validation_elbo"] for r in held])
  assert train[-1] < 16 * np.log(2) - 1.0 < curve.min()
  assert curve[-1] > curve.min() + 1.0  # overfitting, in nats per image
  best_step = held[int(np.argmin(curve))]["step"]
  assert best_step < held[-1]["step"]
  best = checkpoint_lib.Checkpointer(workdir / held_out.BEST_DIR)
  try:
    assert best.latest_step() == best_step
    like = training_step.init_state(jax.random.key(0), config())
    state, _ = best.restore(like, jax.random.key(0))
  finally:
    best.close()
  key = keys.stream(keys.evaluation_key(0), keys.VALIDATION)
  again = evaluate_lib.held_out_bounds(state["params"], key, data.validation,
                                       model=config().model, binarization="fixed", ks=(1,),
                                       batch_size=config().eval_batch_size)
  np.testing.assert_allclose(again[1], -curve.min(), rtol=1e-5)
  # The IS bound at every 20th epoch and the last; it is at least the ELBO (k=10 > 1).
  with_is = [r for r in held if "validation_nll_is" in r]
  assert [r["step"] for r in with_is] == [40, 80]
  assert all(r["validation_nll_is"] <= -r["validation_elbo"] + 0.05 for r in with_is)
  assert (workdir / "figures" / "training_curves.png").stat().st_size > 0


def test_a_resumed_run_keeps_its_best_checkpoint(overfit_run, tmp_path):
  """Trained 20 epochs then resumed to 40, the curve and the best checkpoint are those
  of the uninterrupted run."""
  workdir, data, records = overfit_run
  resumed = tmp_path / "run"
  loop.run(config(epochs=20), resumed, data=data, log=lambda line: None)
  loop.run(config(), resumed, data=data, log=lambda line: None)
  curve = lambda rs: [(r["step"], r["validation_elbo"]) for r in rs if "validation_elbo" in r]
  np.testing.assert_allclose(curve(metrics_io.read_metrics(resumed)), curve(records),
                             rtol=1e-6)
  steps = []
  for w in (workdir, resumed):
    best = checkpoint_lib.Checkpointer(w / held_out.BEST_DIR)
    steps.append(best.latest_step())
    best.close()
  assert steps[0] == steps[1]


def test_every_checkpoint_is_scored_with_the_same_noise(tmp_path):
  """The same parameters give the same validation ELBO at any step: the curve and the
  choice of the best checkpoint compare models, not fresh noise draws."""
  data = memorizable()
  held = held_out.HeldOut(config(), data.validation, "fixed", jax.random.key(3), tmp_path,
                          start_step=0, steps_per_epoch=2, total_steps=80,
                          log=lambda line: None)
  try:
    state = training_step.init_state(jax.random.key(0), config())
    first = held(2, state, jax.random.key(1))["validation_elbo"]
    later = held(40, state, jax.random.key(1))["validation_elbo"]
  finally:
    held.close()
  assert first == later


def stopping_config(**changes):
  return dataclasses.replace(config(), early_stopping_patience=3, **changes)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, overfit_run):
  workdir = tmp_path_factory.mktemp("stopped") / "run"
  _, data, _ = overfit_run
  loop.run(stopping_config(), workdir, data=data, log=lambda line: None)
  return workdir, data, metrics_io.read_metrics(workdir)


def test_early_stopping_stops_after_patience_and_evaluates_the_best(overfit_run, stopped_run):
  """With patience 3 the run stops 4 epochs after its best validation ELBO (the same
  curve as the run without stopping up to there), and its test metrics are those of the
  best checkpoint: its IS bound on the test images equals that of checkpoints_best/."""
  _, _, full = overfit_run
  workdir, data, records = stopped_run
  curve = [(r["step"], r["validation_elbo"]) for r in records if "validation_elbo" in r]
  best_step = max(curve, key=lambda sv: sv[1])[0]
  assert curve[-1][0] == best_step + 4 * 2 < 80  # 2 steps per epoch
  full_curve = [(r["step"], r["validation_elbo"]) for r in full if "validation_elbo" in r]
  np.testing.assert_allclose(curve, full_curve[:len(curve)], rtol=1e-6)
  final = records[-1]
  assert final["stopped_early"] and final["evaluated_step"] == best_step
  assert final["step"] == curve[-1][0]
  best = loop.restore_params(workdir, stopping_config(), held_out.BEST_DIR)
  latest = loop.restore_params(workdir, stopping_config())
  eval_key = keys.evaluation_key(0)
  nll = lambda params: evaluate_lib.evaluate(
      params, eval_key, data.test, model=config().model, binarization="fixed", k=10,
      batch_size=config().eval_batch_size)["test_nll"]
  assert final["test_nll"] == pytest.approx(nll(best), rel=1e-6)
  assert final["test_nll"] != pytest.approx(nll(latest), rel=1e-6)


def test_a_stopped_run_is_not_trained_again(stopped_run):
  """Run again, a stopped run resumes, finds the patience spent and trains no step; the
  study runner reads it as finished (the best checkpoint's parameters)."""
  workdir, data, records = stopped_run
  lines = []
  again = loop.run(stopping_config(), workdir, data=data, log=lines.append)
  assert again["step"] == records[-1]["step"] and again["evaluated_step"] == records[-1][
      "evaluated_step"]
  assert any("early stopping" in line for line in lines)
  assert not any("steps/s" in line for line in lines)
  lines.clear()
  params = loop.trained_params(stopping_config(), workdir, data=data, log=lines.append)
  assert lines and lines[0].startswith("loading the trained model")
  best = loop.restore_params(workdir, stopping_config(), held_out.BEST_DIR)
  jax.tree.map(np.testing.assert_array_equal, params, best)


def test_the_stopping_rule_counts_from_the_later_of_best_and_start(tmp_path):
  """should_stop(step): True once more than `patience` epochs have passed since the later
  of the best validation ELBO's epoch and early_stopping_from_epoch (2 steps per epoch
  here); never with patience 0."""
  def rule(patience, from_epoch, best_step):
    held = held_out.HeldOut(
        dataclasses.replace(config(), early_stopping_patience=patience,
                            early_stopping_from_epoch=from_epoch),
        memorizable().validation, "fixed", jax.random.key(0), tmp_path / f"{patience}_{from_epoch}",
        start_step=0, steps_per_epoch=2, total_steps=80, log=lambda line: None)
    held._best_step = best_step  # pylint: disable=protected-access
    stops = [step for step in range(0, 81, 2) if held.should_stop(step)]
    held.close()
    return stops[0] if stops else None

  assert rule(3, 0, best_step=10) == 2 * (5 + 4)  # best at epoch 5: stop at epoch 9
  assert rule(3, 10, best_step=10) == 2 * (10 + 4)  # counted from epoch 10
  assert rule(3, 2, best_step=10) == 2 * (5 + 4)
  assert rule(0, 0, best_step=10) is None


def test_a_resume_without_the_best_checkpoint_is_refused_under_early_stopping(stopped_run,
                                                                          tmp_path):
  """A run copied without checkpoints_best/ cannot tell its best so far: one error, not
  a silent restart of the count."""
  workdir, data, _ = stopped_run
  copy = tmp_path / "copy"
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns(held_out.BEST_DIR))
  with pytest.raises(checkpoint_lib.CheckpointError, match="holds no checkpoint"):
    loop.run(dataclasses.replace(stopping_config(), epochs=80), copy, data=data,
             log=lambda line: None)


def test_early_stopping_needs_validation_images(tmp_path):
  data = memorizable()
  data = data_lib.ImageData(train=data.train, test=data.test, validation=None,
                            image_shape=(4, 4), binarization="fixed")
  with pytest.raises(config_lib.ConfigError, match="no validation images"):
    loop.run(stopping_config(), tmp_path / "run", data=data, log=lambda line: None)
  assert not (tmp_path / "run" / "config.json").exists()


def test_validation_sources():
  """split: the dataset's own; holdout: the last images of the training set, left out;
  none; and the configs that cannot be."""
  train, split = np.arange(30).reshape(15, 2), np.zeros((3, 2))
  assert data_lib.with_validation(train, split, "split")[1] is split
  kept, held = data_lib.with_validation(train, None, "holdout", holdout=5)
  np.testing.assert_array_equal(kept, train[:10])
  np.testing.assert_array_equal(held, train[10:])
  assert data_lib.with_validation(train, split, "none") == (train, None)
  with pytest.raises(data_lib.DataError, match="too few"):
    data_lib.with_validation(train, None, "holdout", holdout=15)
  assert config_lib.DataConfig().validation_source == "split"
  assert config_lib.DataConfig(dataset="mnist", binarization="dynamic").validation_source == "none"
  with pytest.raises(config_lib.ConfigError, match="no validation split"):
    config_lib.DataConfig(dataset="mnist", binarization="dynamic", validation="split")
  with pytest.raises(config_lib.ConfigError, match="unknown validation"):
    config_lib.DataConfig(validation="test")
  # A config written before the field existed reads as "auto".
  old = json.loads(config_lib.TrainConfig().to_json())
  del old["data"]["validation"]
  assert config_lib.TrainConfig.from_dict(old).data.validation == "auto"


def test_evaluate_reads_the_best_checkpoint(overfit_run):
  """experiments.evaluate --checkpoint=best evaluates the parameters of checkpoints_best/
  (BDMC on images simulated from that model, which needs no dataset)."""
  workdir, _, _ = overfit_run
  result = run_main([f"--workdir={workdir}", "--method=bdmc", "--checkpoint=best",
                     "--images=2", "--chains=2", "--ais_steps=5"], "evaluate")
  succeeded(result)
  line = json.loads(result["stdout"].strip().splitlines()[-1])
  assert line["checkpoint"] == "best" and line["images"] == 2
  assert np.isfinite(line["lower"]) and np.isfinite(line["upper"])
