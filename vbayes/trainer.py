"""A whole run in a workdir: train (resuming from the last checkpoint), evaluate,
write metrics and figures. experiments/train.py is a thin flag parser over `run`.

workdir/
  config.json      the TrainConfig of the run
  metrics.jsonl    one object per logging point; the last holds the test metrics
  tensorboard/     the same numbers as TensorBoard events
  checkpoints/     Orbax: params, optimizer state, step, RNG key
  figures/         reconstructions.png, training_curves.png, latent_grid_walk.png (2-D)
"""

import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vbayes import checkpoint as checkpoint_lib
from vbayes import data as data_lib
from vbayes import evaluate as evaluate_lib
from vbayes import metrics_io, models, plots
from vbayes import train as train_lib
from vbayes.config import TrainConfig, trajectory_fields

CONFIG_FILE = "config.json"
# Streams of randomness, each from fold_in(root, index): never reused across purposes.
INIT_STREAM, TRAIN_STREAM, DATA_STREAM, EVAL_STREAM = range(4)


class WorkdirError(RuntimeError):
  """The workdir holds something this run must not touch."""


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite."""


def check_workdir(config: TrainConfig, workdir: Path):
  """Refuses a workdir holding a run with another config, or anything else.

  Fields in config.RUN_LENGTH_FIELDS (epochs, evaluation settings) may differ: a
  run can be resumed to train longer or be evaluated with another k.
  """
  path = workdir / CONFIG_FILE
  if path.exists():
    try:
      old = TrainConfig.from_dict(json.loads(path.read_text()))
    except Exception as e:
      raise WorkdirError(f"{path} is not a vbayes config ({e}); use another --workdir") from e
    old_fields, new_fields = trajectory_fields(old), trajectory_fields(config)
    if old_fields != new_fields:
      diff = _diff(old_fields, new_fields)
      raise WorkdirError(f"workdir {workdir} holds a run with a different config ({diff}); "
                         "use another --workdir or the same settings")
  elif any(workdir.iterdir()):
    raise WorkdirError(f"workdir {workdir} is not empty and holds no {CONFIG_FILE}; "
                       "use an empty or new --workdir")


def write_config(config: TrainConfig, workdir: Path):
  tmp = workdir / (CONFIG_FILE + ".tmp")
  tmp.write_text(config.to_json())
  os.replace(tmp, workdir / CONFIG_FILE)


def _diff(old: dict, new: dict, prefix: str = "") -> str:
  parts = []
  for name in sorted(set(old) | set(new)):
    a, b = old.get(name), new.get(name)
    if isinstance(a, dict) and isinstance(b, dict):
      inner = _diff(a, b, f"{prefix}{name}.")
      if inner:
        parts.append(inner)
    elif a != b:
      parts.append(f"{prefix}{name}: {a!r} there, {b!r} now")
  return "; ".join(parts)


def run(config: TrainConfig, workdir: str | Path, *, data: data_lib.ImageData | None = None,
        data_dir=None, manual_dir=None, log: Callable[[str], None] = print,
        mesh: jax.sharding.Mesh | None = None,
        epoch_hook: Callable[[int, dict], dict] | None = None) -> dict:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint), then evaluates.

  epoch_hook(step, params) -> dict, if given, runs at every checkpoint (epoch
  end); its numbers join that step's metrics record. Its time is not counted in
  `train_seconds`, the training time summed over all sessions of the run.
  Returns the final metrics record (also the last line of metrics.jsonl).
  """
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  check_workdir(config, workdir)
  if data is None:
    data = data_lib.load(config.data, data_dir=data_dir, manual_dir=manual_dir)
  if data.data_dim != config.model.data_dim:
    raise ValueError(f"model data_dim {config.model.data_dim} does not match the "
                     f"dataset's {data.data_dim} pixels")
  steps_per_epoch = len(data.train) // config.batch_size
  if steps_per_epoch == 0:
    raise ValueError(f"batch_size {config.batch_size} exceeds the {len(data.train)} "
                     "training images")
  total_steps = config.epochs * steps_per_epoch
  steps_per_call = train_lib.steps_per_call_for(steps_per_epoch, config.steps_per_call)
  checkpoint_every = config.checkpoint_every_epochs * steps_per_epoch

  mesh = train_lib.make_mesh() if mesh is None else mesh
  root = jax.random.key(config.seed)
  init_key, train_key, data_key, eval_key = (
      jax.random.fold_in(root, s) for s in (INIT_STREAM, TRAIN_STREAM, DATA_STREAM, EVAL_STREAM))
  state = train_lib.init_state(init_key, config)
  checkpointer = checkpoint_lib.Checkpointer(workdir / "checkpoints")
  writer = None
  try:
    # Nothing in the workdir is written before the checkpoint has been read back.
    if checkpointer.latest_step() is not None:
      state, train_key = checkpointer.restore(state, train_key)
      metrics_io.truncate_after(workdir, int(state["step"]))
      log(f"resumed from step {int(state['step'])} in {checkpointer.directory}")
    write_config(config, workdir)
    writer = metrics_io.MetricWriter(workdir)
    state = train_lib.replicate(state, mesh)
    images = train_lib.replicate(jnp.asarray(data.train), mesh)
    train_chunk = train_lib.make_train_chunk(
        train_lib.make_update(config), batch_size=config.batch_size,
        steps_per_call=steps_per_call, steps_per_epoch=steps_per_epoch,
        binarization=data.binarization, mesh=mesh)
    log(f"training {config.objective} for {config.epochs} epochs = {total_steps} steps "
        f"({steps_per_epoch} per epoch, batch {config.batch_size}) on {mesh.size} "
        f"{jax.default_backend()} device(s)")
    previous = [r for r in metrics_io.read_metrics(workdir) if "train_seconds" in r]
    state = _train_loop(state, train_chunk, images, train_key, data_key, total_steps=total_steps,
                        steps_per_epoch=steps_per_epoch, checkpoint_every=checkpoint_every,
                        checkpointer=checkpointer, writer=writer, log=log,
                        epoch_hook=epoch_hook,
                        seconds_before=previous[-1]["train_seconds"] if previous else 0.0)
    checkpointer.wait()
    results = _evaluate_and_plot(config, state["params"], data, eval_key, workdir, log)
    results = {"step": int(state["step"]), "epoch": int(state["step"]) / steps_per_epoch,
               **results}
    writer.write(results)
    log("test: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                             for k, v in results.items()))
    plots.save_training_curves(metrics_io.read_metrics(workdir), workdir / "figures" /
                               "training_curves.png")
    return results
  finally:
    checkpointer.close()
    if writer is not None:
      writer.close()


def _train_loop(state, train_chunk, images, train_key, data_key, *, total_steps, steps_per_epoch,
                checkpoint_every, checkpointer, writer, log, epoch_hook=None, seconds_before=0.0):
  """Runs chunks until total_steps; logs each chunk's mean metrics while the next one runs."""
  step = int(state["step"])
  start_step, start_time = step, time.perf_counter()
  pending = None  # (step, metrics) of the chunk in flight, read after the next is dispatched
  first = None  # (step, time) when the first chunk's metrics came back
  hook_seconds = 0.0  # time spent in epoch_hook, left out of train_seconds

  def flush(pending):
    nonlocal first
    end_step, metrics = pending
    means = {k: float(v) for k, v in jax.device_get(jax.tree.map(jnp.mean, metrics)).items()}
    now = time.perf_counter() - hook_seconds
    if first is None:  # the first chunk's rate includes compilation
      rate = (end_step - start_step) / (now - start_time)
      first = (end_step, now)
    else:  # mean rate since the first chunk; robust to when the host happens to look
      rate = (end_step - first[0]) / max(now - first[1], 1e-9)
    if not math.isfinite(means["loss"]):
      raise TrainingDiverged(
          f"training loss became {means['loss']} by step {end_step}; the last good checkpoint "
          f"(step {checkpointer.latest_step()}) is kept in {checkpointer.directory}")
    eta = (total_steps - end_step) / max(rate, 1e-9)
    record = {"step": end_step, "epoch": end_step / steps_per_epoch,
              "train_loss": means.pop("loss"),
              **{f"train_{k}": v for k, v in means.items()},
              "steps_per_s": rate, "wall_time": now + hook_seconds - start_time,
              "train_seconds": seconds_before + now - start_time}
    writer.write(record)
    log(f"epoch {record['epoch']:.2f} step {end_step}/{total_steps} loss "
        f"{record['train_loss']:.3f} {rate:.1f} steps/s ETA {eta:.0f}s")

  while step < total_steps:
    state, metrics = train_chunk(state, images, train_key, data_key)
    step += int(metrics["loss"].shape[0])
    if pending is not None:
      flush(pending)
    pending = (step, metrics)
    if step % checkpoint_every == 0 or step == total_steps:
      flush(pending)  # never checkpoint a diverged state
      pending = None
      checkpointer.save(step, state, train_key)
      if epoch_hook is not None:
        hook_start = time.perf_counter()
        extra = epoch_hook(step, state["params"])
        writer.write({"step": step, "epoch": step / steps_per_epoch, **extra})
        hook_seconds += time.perf_counter() - hook_start
  if pending is not None:
    flush(pending)
  if step > start_step:
    log(f"trained {step - start_step} steps in {time.perf_counter() - start_time:.1f}s")
  return state


def _evaluate_and_plot(config: TrainConfig, params, data: data_lib.ImageData, eval_key,
                       workdir: Path, log) -> dict:
  figures = workdir / "figures"
  figures.mkdir(exist_ok=True)
  model = config.model
  t0 = time.perf_counter()
  quadrature = ({"limit": config.quadrature_limit, "points": config.quadrature_points}
                if model.latent_dim == 2 else None)
  results = evaluate_lib.evaluate(params, eval_key, data.test, model=model,
                                  binarization=data.binarization, k=config.eval_k,
                                  batch_size=config.eval_batch_size, quadrature=quadrature,
                                  proposal_samples=config.avb.eval_proposal_samples)
  results["eval_seconds"] = time.perf_counter() - t0
  log(f"evaluated {results['num_test_images']} test images with k={config.eval_k} "
      f"in {results['eval_seconds']:.1f}s")

  if models.has_encoder(params):
    x = np.asarray(data_lib.to_float(jax.random.fold_in(eval_key, 99),
                                     jnp.asarray(data.test[:10]), data.binarization))
    mean_z, _ = evaluate_lib.proposal_moments(params, jax.random.fold_in(eval_key, 98), x,
                                              model=model, proposal_samples=100)
    recon = jax.vmap(models.mean_image, in_axes=(None, None, 0))(params, model, mean_z)
    plots.save_reconstructions(x, np.asarray(recon), data.image_shape,
                               figures / "reconstructions.png")
  if model.latent_dim == 2:
    points, limit = 20, 3.0
    z = jnp.asarray(plots.latent_walk_points(points, limit))
    means = jax.vmap(models.mean_image, in_axes=(None, None, 0))(params, model, z)
    plots.save_latent_grid_walk(np.asarray(means), data.image_shape, points, limit,
                                figures / "latent_grid_walk.png")
  return results


def trained_params(config: TrainConfig, workdir: str | Path, *, data: data_lib.ImageData,
                   log: Callable[[str], None] = print, mesh: jax.sharding.Mesh | None = None):
  """The parameters of a finished run of `config` in `workdir`.

  A workdir whose run reached config.epochs and was evaluated is only read;
  otherwise the run is trained (resumed, or extended to more epochs) and
  evaluated first by `run` (on `mesh`, default all devices).
  """
  workdir = Path(workdir)
  if (workdir / CONFIG_FILE).exists():
    check_workdir(config, workdir)
    records = metrics_io.read_metrics(workdir)
    total_steps = config.epochs * (len(data.train) // config.batch_size)
    if records and "test_nll" in records[-1] and records[-1]["step"] == total_steps:
      log(f"loading the trained model from {workdir} (step {total_steps})")
      return restore_params(workdir, config)
  run(config, workdir, data=data, log=log, mesh=mesh)
  return restore_params(workdir, config)


def restore_params(workdir: str | Path, config: TrainConfig):
  """The parameters of the latest checkpoint in a run's workdir."""
  like = train_lib.init_state(jax.random.key(0), config)
  checkpointer = checkpoint_lib.Checkpointer(Path(workdir) / "checkpoints")
  try:
    state, _ = checkpointer.restore(like, jax.random.key(0))
  finally:
    checkpointer.close()
  return state["params"]
