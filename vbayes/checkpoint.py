"""Orbax checkpoints of the training state and the RNG key.

A checkpoint holds {"state": {"params", "opt_state", "step"}, "train_key": uint32
key data}. Writes are atomic (Orbax commits a finished step directory by
renaming), so a process killed mid-save leaves the previous checkpoint intact.
"""

from pathlib import Path

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint that exists but cannot be read back."""


class Checkpointer:
  """Saves and restores training state in `directory`, keeping the newest `max_to_keep`."""

  def __init__(self, directory: str | Path, max_to_keep: int = 2):
    self.directory = Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state, train_key: jax.Array):
    item = {"state": state, "train_key": jax.random.key_data(train_key)}
    self._manager.save(step, args=ocp.args.StandardSave(item))

  def restore(self, like_state, like_key: jax.Array):
    """Restores the latest checkpoint into the structure, shapes and shardings of the `like_*`."""
    step = self.latest_step()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            {"state": like_state, "train_key": jax.random.key_data(like_key)})
    try:
      item = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # Orbax raises many types; all mean the same to the user.
      raise CheckpointError(
          f"checkpoint {self.directory / str(step)} cannot be read ({type(e).__name__}: "
          f"{str(e).splitlines()[0] if str(e) else ''}). Move it aside to resume from an "
          "earlier one, or use a fresh --workdir.") from e
    if int(item["state"]["step"]) != step:
      raise CheckpointError(f"checkpoint {self.directory / str(step)} holds step "
                            f"{int(item['state']['step'])}, not {step}")
    return item["state"], jax.random.wrap_key_data(item["train_key"])

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()
