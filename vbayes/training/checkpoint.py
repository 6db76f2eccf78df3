"""Orbax checkpoints of the training state and the RNG key.

A checkpoint holds {"state": {"params", "opt_state", "step"}, "train_key": uint32
key data}. Writes are atomic (Orbax commits a finished step directory by
renaming), so a process killed mid-save leaves the previous checkpoint intact.
"""

import os
import re
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from vbayes.errors import UserError


class CheckpointError(UserError):
  """A checkpoint that cannot be read back, or cannot be written."""


class Checkpointer:
  """Saves and restores training state in `directory`, keeping the newest `max_to_keep`."""

  def __init__(self, directory: str | Path, max_to_keep: int = 2):
    self.directory = Path(directory).absolute()
    self._saving = None  # step being written
    self._failed = False
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state, train_key: jax.Array):
    """Starts writing checkpoint `step`; `wait` finishes it (and raises if it failed)."""
    item = {"state": state, "train_key": jax.random.key_data(train_key)}
    self._saving = step
    try:
      self._manager.save(step, args=ocp.args.StandardSave(item))
    except Exception as e:  # pylint: disable=broad-except
      self._fail(e)

  def drop_after(self, step: int):
    """Deletes the checkpoints of steps after `step` (a resumed run takes them again)."""
    for later in [s for s in self._manager.all_steps() if s > step]:
      self._manager.delete(later)

  def restore(self, like_state, like_key: jax.Array):
    """Restores the latest checkpoint into the structure, shapes and shardings of the `like_*`."""
    step = self.latest_step()
    if step is None:
      raise CheckpointError(
          f"{self.directory} holds no finished checkpoint (a save that was interrupted leaves "
          "only a partial one): train the run until it writes one, or use a fresh --workdir")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            {"state": like_state, "train_key": jax.random.key_data(like_key)})
    try:
      item = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # Orbax raises many types; all mean the same to the user.
      self._failed = True
      raise CheckpointError(
          f"checkpoint {self.directory / str(step)} cannot be read ({type(e).__name__}: "
          f"{_reason(e)}). Move it aside to resume from an earlier one, or use a fresh "
          "--workdir.") from e
    if int(item["state"]["step"]) != step:
      raise CheckpointError(f"checkpoint {self.directory / str(step)} holds step "
                            f"{int(item['state']['step'])}, not {step}")
    return item["state"], jax.random.wrap_key_data(item["train_key"])

  def wait(self):
    """Waits for the checkpoint being written; CheckpointError if writing it failed."""
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      self._fail(e)
    self._saving = None

  def _fail(self, e: Exception):
    step, self._saving, self._failed = self._saving, None, True
    kept = self.latest_step()
    kept = (f"the previous checkpoint (step {kept}) is kept" if kept is not None and kept != step
            else "no earlier checkpoint exists")
    raise CheckpointError(f"cannot write checkpoint {self.directory / str(step)}: {_reason(e)}; "
                          f"{kept}. Free space or fix the folder, then re-run the same "
                          "command to resume.") from e

  def close(self):
    """Finishes the checkpoint being written and releases Orbax's threads; CheckpointError
    if that checkpoint failed and no failure was reported yet."""
    error = None
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      error = e
    finally:
      try:
        self._manager.close()
      except Exception as e:  # pylint: disable=broad-except
        error = error or e
    if error is not None and not self._failed:
      self._fail(error)


def _reason(e: BaseException, limit: int = 160) -> str:
  """The operating system's reason behind an Orbax/TensorStore error, else its first line."""
  text = str(e)
  code = re.search(r"os_error_code='?(\d+)", text)
  if code:
    return os.strerror(int(code.group(1)))
  for cause in (e, e.__cause__, e.__context__):
    if isinstance(cause, OSError) and cause.strerror:
      return cause.strerror
  first = text.splitlines()[0] if text else type(e).__name__
  return first if len(first) <= limit else first[:limit - 3] + "..."
