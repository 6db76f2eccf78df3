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
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp

from vbayes import data as data_lib
from vbayes import distributed, keys, numerics, resources
from vbayes.config import ConfigError, TrainConfig
from vbayes.models import Model, ModelConfig, as_model
from vbayes.plots import curves as curve_plots
from vbayes.training import checkpoint as checkpoint_lib
from vbayes.training import chunks, final_evaluation, interrupts
from vbayes.training import held_out as held_out_lib
from vbayes.training import metrics_io
from vbayes.training import step as training_step
from vbayes.training import workdir as workdir_lib
from vbayes.training.workdir import CONFIG_FILE, WorkdirError


class _NoWriter:
  """The metric writer of a process other than the first: writes nothing."""

  def write(self, record: dict):
    del record

  def close(self):
    pass


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
  # Several processes: all run this config in this folder (seen from each of them).
  distributed.agree({"config": config.to_dict(), "workdir": str(workdir.resolve())})
  model = model_for(config, model)
  resources.check_training_fits(model, config.batch_size)  # before anything is allocated
  resources.check_evaluation_fits(model, config.eval_batch_size)  # or written
  if model.latent_dim == 2:
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
        with interrupts.Interrupts() as signals:
          state = chunks.train_chunks(
              state, train_chunk, images, train_key, data_key, total_steps=total_steps,
              steps_per_epoch=steps_per_epoch, checkpoint_every=checkpoint_every,
              checkpointer=checkpointer, writer=writer, log=log, hooks=hooks, stop=stop,
              seconds_before=previous[-1]["train_seconds"] if previous else 0.0,
              interrupts=signals)
        if signals.received and jax.process_count() == 1:  # came after the last chunk
          raise interrupts.RunInterrupted(
              f"{signals.received} stopped the run after its last step, before evaluation "
              "(the checkpoint is written); run the same command again to evaluate it")
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
    results = final_evaluation.evaluate_and_plot(config, model, params, data, eval_key, workdir,
                                                 log, step)
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
