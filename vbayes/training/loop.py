"""A whole run in a workdir: train (resuming from the last checkpoint), evaluate,
write metrics and figures. experiments/train.py is a thin flag parser over `run`.

workdir/
  .lock            held (flock) by the one process running in the workdir; its pid
  config.json      the TrainConfig of the run
  metrics.jsonl    one object per logging point, the validation numbers at each
                   checkpoint; the last holds the test metrics
  tensorboard/     the same numbers as TensorBoard events
  checkpoints/     Orbax: params, optimizer state, step, RNG key
  checkpoints_best/  the same, at the step of the best validation ELBO (held_out.py)
  figures/         reconstructions.png, training_curves.png, latent_grid_walk.png (2-D)

Under several processes (vbayes.distributed) every process runs `run` with the same
arguments: process 0 holds the lock and writes config, metrics and figures; all of
them write and read the checkpoints (Orbax) and share the evaluation.
"""

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vbayes.training import checkpoint as checkpoint_lib
from vbayes import data as data_lib
from vbayes import distributed
from vbayes.evaluation import importance_sampling as evaluate_lib
from vbayes import keys, numerics, precision, resources
from vbayes.evaluation import over_images
from vbayes.plots import curves as curve_plots, images as image_plots, latents as latent_plots
from vbayes.training import held_out as held_out_lib
from vbayes.training import metrics_io
from vbayes.training import step as training_step
from vbayes.training import workdir as workdir_lib
from vbayes.config import ConfigError, TrainConfig
from vbayes.errors import UserError
from vbayes.models import Model, ModelConfig, as_model
from vbayes.training.workdir import CONFIG_FILE, WorkdirError  # pylint: disable=unused-import

# Every test image's log p(x) estimate of the run's evaluation (float32 [N], in test-set
# order): what a paired comparison with another run on the same images reads.
TEST_LOG_PX_FILE = "test_log_px.npy"


class TrainingDiverged(UserError):
  """The loss, the parameters or the optimizer state became NaN or infinite."""


class EvaluationError(UserError):
  """Evaluation gave a non-finite test metric."""


class _NoWriter:
  """The metric writer of a process other than the first: writes nothing."""

  def write(self, record: dict):
    del record

  def close(self):
    pass


def _kept_sentence(checkpointer) -> str:
  step = checkpointer.latest_step()
  if step is None:
    return "no checkpoint was saved before it"
  return f"the last good checkpoint (step {step}) is kept in {checkpointer.directory}"


ModelOrBuilder = Model | Callable[[ModelConfig], Model] | None


def model_for(config: TrainConfig, model: ModelOrBuilder = None) -> Model:
  """The Model a run trains: build(config.model) by default; `model` itself; or, for a
  function, model(config.model)."""
  if model is None or isinstance(model, Model):
    return as_model(config.model if model is None else model)
  return model(config.model)


def run(config: TrainConfig, workdir: str | Path, *, data: data_lib.ImageData | None = None,
        data_dir=None, manual_dir=None, log: Callable[[str], None] = print,
        mesh: jax.sharding.Mesh | None = None,
        epoch_hook: Callable[[int, dict], dict] | None = None,
        model: ModelOrBuilder = None) -> dict:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint), then evaluates.

  The model is the one config.model describes, or `model`: a Model composed of any
  parts (a prior written in a notebook), or a function of config.model that builds one.
  It trains, resumes, is checked and evaluated as a registered one; config.json records
  config.model alone, so a resumed run must be given the same `model` again.

  One process at a time may run in a workdir (`workdir.open_locked`). A state
  (parameters and optimizer state) is checked to be finite before it is saved or
  evaluated, and a non-finite test metric is an error: neither is ever written.
  epoch_hook(step, params) -> dict, if given, runs at every checkpoint (epoch
  end); its numbers join that step's metrics record. Its time is not counted in
  `train_seconds`, the training time summed over all sessions of the run.
  Returns the final metrics record (also the last line of metrics.jsonl).
  """
  workdir = Path(workdir)
  model = model_for(config, model)
  resources.check_training_fits(model, config.batch_size)  # before anything is allocated
  if model.latent_dim == 2:                                 # or written
    resources.check_quadrature_fits(config.quadrature_points)

  def locked():  # process 0 only: the lock, then the check of what the workdir holds
    stack = contextlib.ExitStack()
    with stack:
      stack.enter_context(workdir_lib.open_locked(workdir))
      workdir_lib.check(config, workdir)
      return stack.pop_all()

  with distributed.on_primary(locked):
    return _run_locked(config, workdir, data=data, data_dir=data_dir, manual_dir=manual_dir,
                       log=log, mesh=mesh, epoch_hook=epoch_hook, model=model)


def _run_locked(config: TrainConfig, workdir: Path, *, data, data_dir, manual_dir, log, mesh,
                epoch_hook, model: Model) -> dict:
  primary = distributed.is_primary()
  if not primary:
    log = lambda line: None  # pylint: disable=unnecessary-lambda-assignment
  if data is None:
    data = data_lib.load(config.data, data_dir=data_dir, manual_dir=manual_dir)
  if data.data_dim != model.data_dim:
    raise WorkdirError(f"model data_dim {model.data_dim} does not match the "
                       f"dataset's {data.data_dim} pixels")
  if config.early_stopping_patience and data.validation is None:
    raise ConfigError(f"early stopping watches the validation ELBO, and {config.data.dataset} "
                      f"with validation {config.data.validation!r} has no validation images: "
                      "use validation split or holdout, or early_stopping_patience 0")
  steps_per_epoch = len(data.train) // config.batch_size
  if steps_per_epoch == 0:
    raise ConfigError(f"batch_size {config.batch_size} exceeds the {len(data.train)} "
                       "training images")
  steps_per_call = numerics.largest_divisor_at_most(steps_per_epoch, config.steps_per_call)
  checkpoint_every = config.checkpoint_every_epochs * steps_per_epoch

  mesh = training_step.make_mesh() if mesh is None else mesh
  root = jax.random.key(config.seed)
  init_key, train_key, data_key, eval_key = (
      keys.stream(root, s) for s in (keys.INIT, keys.TRAIN, keys.DATA, keys.EVAL))
  # Everything a jitted call or a checkpoint sees is replicated on the (global) mesh.
  state = training_step.replicate(training_step.init_state(init_key, config, model), mesh)
  train_key, data_key = training_step.replicate((train_key, data_key), mesh)
  checkpointer = checkpoint_lib.Checkpointer(workdir / "checkpoints")
  writer, finished, held_out = None, False, None
  try:
    # Nothing in the workdir is written before the checkpoint has been read back.
    start_step = 0
    if checkpointer.latest_step() is not None:
      state, train_key = checkpointer.restore(state, train_key)
      start_step = int(state["step"])
      if not bool(training_step.all_finite(state)):
        raise checkpoint_lib.CheckpointError(
            f"checkpoint {checkpointer.directory / str(start_step)} holds non-finite values "
            "(written before vbayes checked states); move it aside to resume from an "
            "earlier one, or use a fresh --workdir")
      log(f"resumed from step {start_step} in {checkpointer.directory}")
    total_steps = config.epochs * steps_per_epoch
    if start_step > total_steps:
      log(f"the run in {workdir} is at step {start_step} (epoch "
          f"{start_step / steps_per_epoch:g}), past --epochs={config.epochs}; evaluating it "
          "as it is")
      epochs = workdir_lib.written_epochs(workdir)
      config = dataclasses.replace(config, epochs=epochs or -(-start_step // steps_per_epoch))
      total_steps = start_step
    if primary:
      metrics_io.truncate_after(workdir, start_step)
      workdir_lib.write_config(config, workdir)
    writer = metrics_io.MetricWriter(workdir) if primary else _NoWriter()
    if start_step < total_steps:
      images = training_step.replicate(jnp.asarray(data.train), mesh)
      train_chunk = training_step.make_train_chunk(
          training_step.make_update(config, model, steps_per_epoch=steps_per_epoch),
          batch_size=config.batch_size,
          steps_per_call=steps_per_call, steps_per_epoch=steps_per_epoch,
          binarization=data.binarization, mesh=mesh)
      log(f"training {config.objective.name} for {config.epochs} epochs = {total_steps} steps "
          f"({steps_per_epoch} per epoch, batch {config.batch_size}) on {mesh.size} "
          f"{jax.default_backend()} device(s)"
          + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else ""))
      previous = [r for r in metrics_io.read_metrics(workdir) if "train_seconds" in r]
      hooks = []
      if data.validation is not None:
        held_out = held_out_lib.HeldOut(
            config, data.validation, data.binarization,
            keys.stream(eval_key, keys.VALIDATION), workdir, start_step=start_step,
            steps_per_epoch=steps_per_epoch, total_steps=total_steps, log=log, model=model)
        hooks.append(held_out)
      if epoch_hook is not None:
        hooks.append(lambda step, state, key: epoch_hook(step, state["params"]))
      stop = held_out.should_stop if held_out is not None else None
      if stop is not None and stop(start_step):
        log(f"early stopping: no better validation ELBO since step {held_out.best_step} "
            f"(patience {config.early_stopping_patience} epochs)")
      else:
        state = _train_loop(state, train_chunk, images, train_key, data_key,
                            total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                            checkpoint_every=checkpoint_every, checkpointer=checkpointer,
                            writer=writer, log=log, hooks=hooks, stop=stop,
                            seconds_before=previous[-1]["train_seconds"] if previous else 0.0)
    step = int(state["step"])
    params, evaluated = state["params"], {}
    if config.early_stopping_patience:  # the state of the best validation ELBO is the model
      if held_out is not None:  # its checkpoints are written: read them
        held_out.close()
        held_out = None
      params = restore_params(workdir, config, held_out_lib.BEST_DIR, model=model)
      evaluated = {"evaluated_step": latest_step(workdir / held_out_lib.BEST_DIR),
                   "stopped_early": step < total_steps}
      log(f"evaluating the best checkpoint by validation ELBO, step "
          f"{evaluated['evaluated_step']}" + (" (stopped early)" if step < total_steps else ""))
    results = _evaluate_and_plot(config, model, params, data, eval_key, workdir, log, step)
    results = {"step": step, "epoch": step / steps_per_epoch, **evaluated, **results}
    writer.write(results)
    log("test: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                             for k, v in results.items()))
    if primary:
      curve_plots.save_training_curves(metrics_io.read_metrics(workdir),
                                       workdir / "figures" / "training_curves.png")
    finished = True
    return results
  finally:
    try:
      checkpointer.close()  # raises if the last checkpoint could not be written...
    except checkpoint_lib.CheckpointError:
      if finished:  # ...but never hides the error that is already on its way out
        raise
    finally:
      if writer is not None:
        writer.close()
      if held_out is not None:
        held_out.close()


def latest_step(folder: Path) -> int | None:
  """The step of the newest checkpoint in `folder` (None without one)."""
  checkpointer = checkpoint_lib.Checkpointer(folder)
  try:
    return checkpointer.latest_step()
  finally:
    checkpointer.close()


def _train_loop(state, train_chunk, images, train_key, data_key, *, total_steps, steps_per_epoch,
                checkpoint_every, checkpointer, writer, log, hooks=(), stop=None,
                seconds_before=0.0):
  """Runs chunks until total_steps, or until stop(step) at a checkpoint (after the hooks);
  logs each chunk's mean metrics while the next one runs.

  At a checkpoint the state is checked to be finite (one reduction on the device)
  and saved; the save completes, and any error in it is raised, while the next
  chunk runs.
  """
  step = int(state["step"])
  start_step, start_time = step, time.perf_counter()
  pending = None  # (step, metrics) of the chunk in flight, read after the next is dispatched
  saving = None  # step of a checkpoint being written while the next chunk runs
  first = None  # (step, time) when the first chunk's metrics came back
  hook_seconds = 0.0  # time spent in the hooks, left out of train_seconds

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
      raise TrainingDiverged(f"training loss became {means['loss']} by step {end_step}; "
                             f"{_kept_sentence(checkpointer)}")
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
    if saving is not None:
      checkpointer.wait()
      saving = None
    if pending is not None:
      flush(pending)
    pending = (step, metrics)
    if step % checkpoint_every == 0 or step == total_steps:
      flush(pending)  # never checkpoint a diverged state
      pending = None
      if not bool(training_step.all_finite(state)):
        raise TrainingDiverged(
            f"the parameters or optimizer state became NaN or infinite by step {step} (the "
            f"losses logged so far were finite); {_kept_sentence(checkpointer)}")
      checkpointer.save(step, state, train_key)
      saving = step
      if hooks:
        hook_start = time.perf_counter()
        extra = {}
        for hook in hooks:
          extra.update(hook(step, state, train_key))
        writer.write({"step": step, "epoch": step / steps_per_epoch, **extra})
        hook_seconds += time.perf_counter() - hook_start
      if stop is not None and stop(step):
        log(f"early stopping at step {step}: no better validation ELBO in the epochs since")
        break
  if pending is not None:
    flush(pending)
  checkpointer.wait()
  if step > start_step:
    log(f"trained {step - start_step} steps in {time.perf_counter() - start_time:.1f}s")
  return state


@precision.estimates  # also its eager parts (the figures' reconstructions)
def _evaluate_and_plot(config: TrainConfig, model: Model, params, data: data_lib.ImageData,
                       eval_key, workdir: Path, log, step: int) -> dict:
  """Test metrics (an EvaluationError if any is non-finite) and, on process 0, the run's
  figures."""
  figures = workdir / "figures"
  t0 = time.perf_counter()
  quadrature = ({"limit": config.quadrature_limit, "points": config.quadrature_points}
                if model.latent_dim == 2 else None)
  log(f"evaluating {len(data.test)} test images: importance sampling with k={config.eval_k}"
      + (f", then {config.quadrature_points}^2-point grid quadrature" if quadrature else ""))
  results = evaluate_lib.evaluate(params, eval_key, data.test, model=model,
                                  binarization=data.binarization, k=config.eval_k,
                                  batch_size=config.eval_batch_size, quadrature=quadrature,
                                  proposal_samples=config.eval_proposal_samples, log=log,
                                  per_image=True)
  log_px_N = results.pop("test_log_px")
  bad = sorted(name for name, value in results.items()
               if isinstance(value, float) and not math.isfinite(value))
  if bad:
    raise EvaluationError(
        f"evaluation of the model at step {step} gave non-finite "
        f"{', '.join(f'{name} = {results[name]}' for name in bad)}; no test metrics or "
        "figures were written. The model's outputs overflow (a diverged run: try a lower "
        "--learning_rate) or the data does not fit the likelihood")
  results["eval_seconds"] = time.perf_counter() - t0
  log(f"evaluated {results['num_test_images']} test images with k={config.eval_k} "
      f"in {results['eval_seconds']:.1f}s")
  if not distributed.is_primary():
    return results
  workdir_lib.write_array_atomically(workdir / TEST_LOG_PX_FILE, log_px_N)
  figures.mkdir(exist_ok=True)
  params = distributed.local_copy(params)
  if model.has_encoder:  # the first test images as the evaluation read them
    x = np.asarray(over_images.binarized(data.test[:10], eval_key, data.binarization))
    figures_key = keys.stream(eval_key, keys.FIGURES)
    q = evaluate_lib.proposal_for(params, keys.item(figures_key, 0), x, model=model,
                                  proposal_samples=100)
    recon = model.mean_image(params, evaluate_lib.posterior_mean(
        q, keys.item(figures_key, 1), 100))
    image_plots.save_reconstructions(x, np.asarray(recon), data.image_shape,
                               figures / "reconstructions.png")
  if model.latent_dim == 2:
    points, limit = 20, 3.0
    z = jnp.asarray(latent_plots.latent_walk_points(points, limit))
    means = model.mean_image(params, z)
    latent_plots.save_latent_grid_walk(np.asarray(means), data.image_shape, points, limit,
                                figures / "latent_grid_walk.png")
  return results


def trained_params(config: TrainConfig, workdir: str | Path, *, data: data_lib.ImageData,
                   log: Callable[[str], None] = print, mesh: jax.sharding.Mesh | None = None,
                   model: ModelOrBuilder = None):
  """The parameters of a finished run of `config` (of `model`, as `run` takes it) in
  `workdir`.

  A workdir whose run reached config.epochs and was evaluated is only read;
  otherwise the run is trained (resumed, or extended to more epochs) and
  evaluated first by `run` (on `mesh`, default all devices).
  """
  workdir = Path(workdir)
  if (workdir / CONFIG_FILE).exists():
    workdir_lib.check(config, workdir)
    records = metrics_io.read_metrics(workdir)
    total_steps = config.epochs * (len(data.train) // config.batch_size)
    if records and "test_nll" in records[-1] and (records[-1]["step"] >= total_steps
                                                  or records[-1].get("stopped_early")):
      log(f"loading the trained model from {workdir} (step {records[-1]['step']})")
      return restore_params(workdir, config, evaluated_checkpoints(config), model=model)
  run(config, workdir, data=data, log=log, mesh=mesh, model=model)
  return restore_params(workdir, config, evaluated_checkpoints(config), model=model)


def evaluated_checkpoints(config: TrainConfig) -> str:
  """The folder of the checkpoint a finished run was evaluated at: the best one under
  early stopping, else the latest."""
  return held_out_lib.BEST_DIR if config.early_stopping_patience else "checkpoints"


def restore_params(workdir: str | Path, config: TrainConfig, checkpoints: str = "checkpoints",
                   model: ModelOrBuilder = None):
  """The parameters of the latest checkpoint in a run's workdir (in workdir/checkpoints,
  or another folder of it: held_out.BEST_DIR), on this process's first device (read by
  every process of a multi-process run, as Orbax needs); `model` as `run` takes it."""
  mesh = training_step.make_mesh()
  like = training_step.replicate(
      training_step.init_state(jax.random.key(0), config, model_for(config, model)), mesh)
  checkpointer = checkpoint_lib.Checkpointer(Path(workdir) / checkpoints)
  try:
    state, _ = checkpointer.restore(like, training_step.replicate(jax.random.key(0), mesh))
  finally:
    checkpointer.close()
  return distributed.local_copy(state["params"])
