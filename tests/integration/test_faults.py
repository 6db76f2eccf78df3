"""A run never keeps or reports a broken state: divergence, a second process on the
same workdir, a crash mid-log, a full disk, a shorter re-run, a non-finite metric.

Each test drives `training_loop.run` in-process on 4frames with a tiny network."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vbayes import config as config_lib, tfds_arrays
from vbayes.models.networks import mlp
from vbayes.training import checkpoint, chunks, final_evaluation
from vbayes.evaluation import importance_sampling as evaluate
from vbayes.training import metrics_io
from vbayes.training import step as training_step
from vbayes.training import loop as training_loop
from vbayes.training import workdir as workdir_lib
from vbayes.objectives import avb
from vbayes.models.proposals import implicit

from tests.helpers.paths import REPO


def tiny_config(**overrides) -> config_lib.TrainConfig:
  model = config_lib.ModelConfig(data_dim=4, latent_dim=2, network=mlp.Config(hidden_sizes=(8,)))
  defaults = dict(model=model, data=config_lib.DataConfig(dataset="4frames"), batch_size=100,
                  epochs=2, steps_per_call=5, eval_k=8, quadrature_points=64)
  return config_lib.TrainConfig(**{**defaults, **overrides})


def strict_records(workdir: Path) -> list[dict]:
  """metrics.jsonl parsed as strict JSON: a bare NaN or Infinity fails."""
  def refuse(token):
    raise AssertionError(f"metrics.jsonl holds a bare {token}")
  return [json.loads(line, parse_constant=refuse)
          for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def checkpoint_steps(workdir: Path) -> list[int]:
  folder = workdir / "checkpoints"
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


@pytest.mark.parametrize("epochs", [1, 5])
def test_a_state_gone_nonfinite_is_never_saved_nor_evaluated(tmp_path, monkeypatch, epochs):
  """One step per epoch, as with the issue's --batch_size=1000 on 4frames: each step's
  loss is computed before its update, so it is finite while the state after the update
  is not (the issue's --learning_rate=inf did this; the config now refuses inf)."""
  real_make_update = training_step.make_update

  def nan_after_update(config, model=None, steps_per_epoch=None):
    update = real_make_update(config, model, steps_per_epoch)

    def poisoned(params, opt_state, step, key, x):
      params, opt_state, metrics = update(params, opt_state, step, key, x)
      return jax.tree.map(lambda p: p * jnp.nan, params), opt_state, metrics
    return poisoned

  monkeypatch.setattr(training_step, "make_update", nan_after_update)
  config = tiny_config(batch_size=1000, epochs=epochs, steps_per_call=1)
  with pytest.raises(chunks.TrainingDiverged,
                     match="NaN or infinite by step 1.*no checkpoint was saved before it"):
    training_loop.run(config, tmp_path / "run", log=lambda _: None)
  assert checkpoint_steps(tmp_path / "run") == []
  assert not any("test_nll" in r for r in strict_records(tmp_path / "run"))


def test_a_run_whose_evaluation_overflows_fails_and_writes_no_test_metric(tmp_path):
  """A learning rate of 1e30 leaves the parameters finite (about 1e30) after one step, and
  their test metrics are NaN: an error, not a result."""
  config = tiny_config(learning_rate=1e30, batch_size=1000, epochs=1, steps_per_call=1)
  with pytest.raises(final_evaluation.EvaluationError, match="non-finite .*test_nll = nan"):
    training_loop.run(config, tmp_path / "run", log=lambda _: None)
  assert not any("test_nll" in r for r in strict_records(tmp_path / "run"))


def test_a_nonfinite_test_metric_is_an_error_and_is_not_written(tmp_path, monkeypatch):
  real = evaluate.evaluate

  def nan_nll(*args, **kwargs):
    return {**real(*args, **kwargs), "test_nll": float("nan")}

  monkeypatch.setattr(evaluate, "evaluate", nan_nll)
  with pytest.raises(final_evaluation.EvaluationError, match="non-finite test_nll = nan"):
    training_loop.run(tiny_config(), tmp_path / "run", log=lambda _: None)
  assert not any("test_nll" in r for r in strict_records(tmp_path / "run"))


def test_metrics_jsonl_is_strict_json():
  line = metrics_io.dumps({"step": 1, "a": float("nan"), "b": [float("inf"), 2.0]})
  assert json.loads(line) == {"step": 1, "a": None, "b": [None, 2.0]}


@pytest.mark.slow
def test_a_second_process_on_the_workdir_is_refused_naming_the_holder(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from vbayes.training import workdir\n"
       "with workdir.open_locked(sys.argv[1]):\n  print('locked', flush=True); time.sleep(60)",
       str(tmp_path / "run")], cwd=REPO, stdout=subprocess.PIPE, text=True,
      env={**os.environ, "PYTHONPATH": str(REPO)})
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(workdir_lib.WorkdirError, match=f"in use by another run \\(pid {holder.pid}\\)"):
      training_loop.run(tiny_config(), tmp_path / "run", log=lambda _: None)
    assert workdir_lib.run_files(tmp_path / "run") == []  # nothing written
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # The kernel dropped the dead holder's lock: the next run goes ahead.
  training_loop.run(tiny_config(), tmp_path / "run", log=lambda _: None)
  assert checkpoint_steps(tmp_path / "run") == [10, 20]


def test_records_of_a_run_killed_before_its_first_checkpoint_are_dropped_on_resume(tmp_path):
  """A run killed before any checkpoint logged steps that the next run takes again."""
  config = tiny_config()
  workdir = tmp_path / "run"
  workdir.mkdir()
  workdir_lib.write_config(config, workdir)
  (workdir / "metrics.jsonl").write_text(
      "".join(json.dumps({"step": s, "train_loss": 3.0}) + "\n" for s in (5, 10, 15)))
  training_loop.run(config, workdir, log=lambda _: None)
  steps = [r["step"] for r in strict_records(workdir) if "train_loss" in r]
  assert steps == [5, 10, 15, 20]


def test_a_cut_off_last_line_is_repaired_with_one_warning(tmp_path, capsys):
  config = tiny_config()
  workdir = tmp_path / "run"
  training_loop.run(dataclasses.replace(config, epochs=1), workdir, log=lambda _: None)
  with open(workdir / "metrics.jsonl", "a") as f:
    f.write('{"step": 15, "train_lo')  # killed while writing
  capsys.readouterr()
  training_loop.run(config, workdir, log=lambda _: None)
  err = capsys.readouterr().err
  assert err.count("cut-off") == 1 and str(workdir / "metrics.jsonl") in err
  records = strict_records(workdir)
  assert [r["step"] for r in records if "train_loss" in r] == [5, 10, 15, 20]


def test_a_metrics_file_damaged_before_its_last_line_is_refused_clearly(tmp_path):
  config = tiny_config()
  workdir = tmp_path / "run"
  training_loop.run(config, workdir, log=lambda _: None)
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  lines[1] = lines[1][:7]
  (workdir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  with pytest.raises(metrics_io.MetricsError, match="metrics.jsonl line 2 is not JSON"):
    training_loop.run(dataclasses.replace(config, epochs=3), workdir, log=lambda _: None)


def test_rerunning_with_fewer_epochs_keeps_the_config_and_evaluates_the_run(tmp_path):
  config = tiny_config(epochs=2)
  workdir = tmp_path / "run"
  training_loop.run(config, workdir, log=lambda _: None)
  before = (workdir / "config.json").read_text()
  lines = []
  results = training_loop.run(dataclasses.replace(config, epochs=1, eval_k=16), workdir,
                        log=lines.append)
  assert json.loads((workdir / "config.json").read_text())["epochs"] == 2
  assert json.loads(before)["epochs"] == 2
  assert any("past --epochs=1" in line and "evaluating it" in line for line in lines)
  assert results["step"] == 20 and results["eval_k"] == 16
  assert checkpoint_steps(workdir) == [10, 20]
  assert [r["step"] for r in strict_records(workdir) if "test_nll" in r] == [20]


def _mount_tmpfs(path: Path, size: str) -> bool:
  path.mkdir()
  if os.geteuid() != 0 or not shutil.which("mount"):
    return False
  return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                        capture_output=True, check=False).returncode == 0


# The failed write leaves Orbax's background thread calling into its closed event loop
# (Python reports it as an ignored exception): Orbax's debris, not a failure of the run.
@pytest.mark.slow
@pytest.mark.filterwarnings(
    "ignore:(?s)Exception ignored in.*Event loop is closed:pytest.PytestUnraisableExceptionWarning")
def test_a_full_disk_stops_the_run_at_that_checkpoint_and_keeps_the_previous(tmp_path):
  """On a small tmpfs the first checkpoint is written, then a file fills the disk: the
  second checkpoint's write fails, and the run stops there with one clear error."""
  disk = tmp_path / "disk"
  if not _mount_tmpfs(disk, "8m"):
    pytest.skip("needs root and tmpfs to make a full disk")
  try:
    workdir = disk / "run"
    config = tiny_config(epochs=4, model=config_lib.ModelConfig(
        data_dim=4, latent_dim=2, network=mlp.Config(hidden_sizes=(256, 256))))

    def fill_disk_after_first_checkpoint(step, params):
      del params
      if step == 10:
        deadline = time.time() + 60
        while not (workdir / "checkpoints" / "10").is_dir():  # written in the background
          assert time.time() < deadline
          time.sleep(0.01)
        with open(disk / "filler", "wb", buffering=0) as f:
          try:
            while True:
              f.write(b"\0" * (1 << 16))
          except OSError:
            pass
          # Room for the logs' few hundred bytes, none for a checkpoint of ~2 MB.
          f.truncate(max(0, os.fstat(f.fileno()).st_size - (256 << 10)))
      return {}

    with pytest.raises(checkpoint.CheckpointError) as raised:
      training_loop.run(config, workdir, log=lambda _: None,
                        epoch_hook=fill_disk_after_first_checkpoint)
    message = str(raised.value)
    assert "checkpoints/20: No space left on device" in message, message
    assert "the previous checkpoint (step 10) is kept" in message
    assert len(message) < 400 and "\n" not in message
    assert checkpoint_steps(workdir) == [10]
    (disk / "filler").unlink()
    params = training_loop.restore_params(workdir, config)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(params))
  finally:
    subprocess.run(["umount", str(disk)], check=False)


def test_arrays_cache_writers_use_temporary_files_of_their_own(tmp_path, monkeypatch):
  """Two processes preparing the same cache must not write the same temporary file."""
  written = []
  real_replace = os.replace
  monkeypatch.setattr(os, "replace", lambda src, dst: (written.append(src), real_replace(src, dst)))
  path = tfds_arrays.cache_path("mnist", tmp_path)
  arrays = {"train": np.zeros((2, 784), np.uint8), "test": np.zeros((1, 784), np.uint8)}
  tfds_arrays.save_arrays(path, arrays)
  tfds_arrays.save_arrays(path, arrays)
  assert len(set(written)) == 2 and all(Path(w).parent == path.parent for w in written)
  assert sorted(p.name for p in path.parent.iterdir()) == ["mnist.npz"]


def flat_config_json(config: config_lib.TrainConfig) -> dict:
  """config.json as vbayes wrote it before each objective had its own settings and before
  avb.moment_samples: k, estimator, kl_estimator and kl_warmup_steps beside the run's
  fields, AVB's settings (with eval_proposal_samples) under "avb" for every objective."""
  d = config.to_dict()
  settings = d.pop("objective")
  name = settings.pop("name")
  avb_settings = settings if name == "avb" else avb.Config().to_dict()
  avb_settings = {key: value for key, value in avb_settings.items()
                  if key not in ("name", "moment_samples", "kl_warmup_steps")}
  d.update(objective=name, k=settings.get("k", 1), estimator=settings.get("estimator", "reparam"),
           kl_estimator=settings.get("kl_estimator", "analytic"),
           kl_warmup_steps=settings.get("kl_warmup_steps", 0),
           avb={**avb_settings, "eval_proposal_samples": d.pop("eval_proposal_samples")})
  return d


def test_a_config_json_from_before_moment_samples_and_coarse_grids_still_resumes(tmp_path):
  """config.json as vbayes wrote it before: AVB's settings flat and without
  moment_samples, and quadrature_points=32, which the config now refuses but a resumed
  run may change."""
  workdir = tmp_path / "run"
  workdir.mkdir()
  old = flat_config_json(tiny_config())
  old["quadrature_points"] = 32
  (workdir / "config.json").write_text(json.dumps(old))
  workdir_lib.check(tiny_config(), workdir)  # an ELBO run: AVB's settings do not matter
  # An AVB+AC run from then took its moments from the scored samples: not resumed with
  # the new estimator, and the message says which setting differs.
  ac = config_lib.TrainConfig(
      model=config_lib.ModelConfig(data_dim=4, latent_dim=2, network=mlp.Config(hidden_sizes=(8,)),
                                   proposal=implicit.Config(hidden_sizes=(8,))),
      data=config_lib.DataConfig(dataset="4frames"), objective=avb.Config(adaptive_contrast=True))
  (workdir / "config.json").write_text(json.dumps(flat_config_json(ac)))
  with pytest.raises(workdir_lib.WorkdirError,
                     match="objective.moment_samples: 0 there, 128 now"):
    workdir_lib.check(ac, workdir)
  workdir_lib.check(dataclasses.replace(
      ac, objective=dataclasses.replace(ac.objective, moment_samples=0)), workdir)


def test_leftovers_of_a_run_that_failed_before_its_config_do_not_block_the_next(tmp_path):
  workdir = tmp_path / "run"
  (workdir / "checkpoints").mkdir(parents=True)
  (workdir / "config.json.abc123.tmp").write_text("{")
  workdir_lib.check(tiny_config(), workdir)
  (workdir / "notes.txt").write_text("mine")
  with pytest.raises(workdir_lib.WorkdirError, match="not empty"):
    workdir_lib.check(tiny_config(), workdir)


def test_a_folder_with_only_an_unfinished_checkpoint_is_one_clear_error(tmp_path):
  """A save that was cut off leaves only Orbax's temporary folder: reading the latest
  checkpoint says so, instead of 'checkpoints/None cannot be read'."""
  folder = tmp_path / "checkpoints"
  (folder / "40.orbax-checkpoint-tmp-1234567890").mkdir(parents=True)
  reader = checkpoint.Checkpointer(folder)
  try:
    assert reader.latest_step() is None
    like = training_step.init_state(jax.random.key(0), config_lib.TrainConfig(
        model=config_lib.ModelConfig(data_dim=4, latent_dim=2,
                                     network=mlp.Config(hidden_sizes=(4,))),
        data=config_lib.DataConfig(dataset="4frames")))
    with pytest.raises(checkpoint.CheckpointError, match="holds no finished checkpoint"):
      reader.restore(like, jax.random.key(0))
  finally:
    reader.close()


def test_memory_a_run_needs_is_estimated_before_anything_is_allocated():
  """resources: the parameter count from shapes alone (equal to the initialized one), and a
  model or quadrature grid beyond the device's memory refused in one error naming the
  setting, in seconds, without allocating it."""
  from vbayes import resources
  from vbayes.models import build
  small = build(config_lib.ModelConfig(data_dim=6, latent_dim=2,
                                       network=mlp.Config(hidden_sizes=(5,))))
  count = sum(leaf.size for leaf in jax.tree.leaves(small.init(jax.random.key(0))))
  assert resources.parameter_count(small) == count
  resources.check_training_fits(small, batch_size=10, available=2**30)  # fits
  with pytest.raises(resources.ResourceError, match="use a smaller model"):
    resources.check_training_fits(small, batch_size=10, available=4 * count)
  huge = build(config_lib.ModelConfig(latent_dim=10**9))  # 5e11 decoder weights
  with pytest.raises(resources.ResourceError, match=r"training needs at least .* GiB"):
    resources.check_training_fits(huge, batch_size=100)
  resources.check_quadrature_fits(512)
  with pytest.raises(resources.ResourceError, match="quadrature_points=10000000: the"):
    resources.check_quadrature_fits(10**7)
  # An evaluation step: 16 arrays of a row's largest (the 6 logits) per row, 4 * 16 * 6
  # * 100 bytes for 100 rows; AIS names its two settings.
  resources.check_evaluation_fits(small, 100, available=2 * 4 * 16 * 6 * 100)
  with pytest.raises(resources.ResourceError, match="eval_batch_size=100: one evaluation step"):
    resources.check_evaluation_fits(small, 100, available=4 * 16 * 6 * 100)
  with pytest.raises(resources.ResourceError, match=r"batch_size=10 x chains=10: .* 100 decoder"):
    resources.check_evaluation_fits(small, 100, available=4 * 16 * 6 * 100, flag="batch_size",
                                    setting="batch_size=10 x chains=10")


def test_an_allocation_that_fails_anyway_is_one_error_line(capsys):
  """RESOURCE_EXHAUSTED from XLA (an allocation the estimates let through) ends a
  script's main with one error line and status 1, not a traceback."""
  from experiments import common

  def main(argv):
    del argv
    jnp.zeros((2**42,), jnp.float32).block_until_ready()  # 16 TiB

  with pytest.raises(SystemExit) as exit_info:
    common.with_errors(main)([])
  assert exit_info.value.code == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: out of memory (RESOURCE_EXHAUSTED")
  assert "--batch_size" in err[0]
