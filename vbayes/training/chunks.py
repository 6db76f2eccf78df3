"""The host's loop over jitted chunks of training steps: log, check, checkpoint.

Each call of `train_chunk` runs `steps_per_call` steps on the device; the host reads a
chunk's metrics only after the next chunk is dispatched, so logging never stalls the
device. At a checkpoint the state is checked to be finite before it is saved.
"""

import math
import time

import jax
import jax.numpy as jnp

from vbayes.errors import UserError
from vbayes.training import step as training_step
from vbayes.training.interrupts import Interrupts, RunInterrupted


class TrainingDiverged(UserError):
  """The loss, the parameters or the optimizer state became NaN or infinite."""


def _kept_sentence(checkpointer) -> str:
  step = checkpointer.latest_step()
  if step is None:
    return "no checkpoint was saved before it"
  return f"the last good checkpoint (step {step}) is kept in {checkpointer.directory}"


def train_chunks(state, train_chunk, images, train_key, data_key, *, total_steps, steps_per_epoch,
                checkpoint_every, checkpointer, writer, log, hooks=(), stop=None,
                seconds_before=0.0, interrupts: Interrupts | None = None):
  """Runs train_chunk until total_steps, or until stop(step) at a checkpoint (after the hooks);
  logs each chunk's mean metrics while the next one runs.

  At a checkpoint the state is checked to be finite (one reduction on the device)
  and saved; the save completes, and any error in it is raised, while the next
  chunk runs. When `interrupts` says a signal stops the run after a chunk, that chunk's
  state is checked and saved (by every process), then RunInterrupted is raised.
  """
  step = int(state["step"])
  start_step, start_time = step, time.perf_counter()
  pending = None  # (step, metrics) of the chunk in flight, read after the next is dispatched
  saving = None  # step of a checkpoint being written while the next chunk runs
  # (step, time) when the second chunk's metrics came back: the base of the rate. Not the
  # first's: its metrics can reach the host only when the second chunk has run too.
  base = None
  flushed = 0
  hook_seconds = 0.0  # time spent in the hooks, left out of train_seconds

  def flush(pending):
    nonlocal base, flushed
    end_step, metrics = pending
    means = {k: float(v) for k, v in jax.device_get(jax.tree.map(jnp.mean, metrics)).items()}
    now = time.perf_counter() - hook_seconds
    flushed += 1
    if base is None:  # the first two chunks' rate, compilation included
      rate = (end_step - start_step) / max(now - start_time, 1e-9)
      base = (end_step, now) if flushed == 2 else None
    else:  # mean rate since the second chunk; robust to when the host happens to look
      rate = (end_step - base[0]) / max(now - base[1], 1e-9)
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
    interrupted = interrupts is not None and interrupts.reached()
    at_checkpoint = step % checkpoint_every == 0 or step == total_steps
    if at_checkpoint or interrupted:
      flush(pending)  # never checkpoint a diverged state
      pending = None
      if not bool(training_step.all_finite(state)):
        raise TrainingDiverged(
            f"the parameters or optimizer state became NaN or infinite by step {step} (the "
            f"losses logged so far were finite); {_kept_sentence(checkpointer)}")
      checkpointer.save(step, state, train_key)
      saving = step
    if at_checkpoint:
      if hooks:
        hook_start = time.perf_counter()
        extra = {}
        for hook in hooks:
          extra.update(hook(step, state, train_key))
        writer.write({"step": step, "epoch": step / steps_per_epoch, **extra})
        hook_seconds += time.perf_counter() - hook_start
      if stop is not None and stop(step) and not interrupted:
        log(f"early stopping at step {step}: no better validation ELBO in the epochs since")
        break
    if interrupted:
      checkpointer.wait()
      raise RunInterrupted(f"{interrupts.received} stopped the run at step {step} (epoch "
                           f"{step / steps_per_epoch:.2f}) after its checkpoint in "
                           f"{checkpointer.directory}; run the same command again to resume")
  if pending is not None:
    flush(pending)
  checkpointer.wait()
  if step > start_step:
    log(f"trained {step - start_step} steps in {time.perf_counter() - start_time:.1f}s")
  return state
