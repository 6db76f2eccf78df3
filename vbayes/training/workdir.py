"""A run's workdir: created, locked to one process, checked against the run's config.

    with workdir.open_locked(path) as lock:   # WorkdirError if another run holds it
      workdir.check(config, path)
      ...

The lock is an OS advisory lock (flock) on `workdir/.lock`, which holds the pid
of its holder. The kernel releases it when the holder exits, however it exits
(kill -9 too), so a lock left behind by a dead run never blocks the next one.
"""

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from vbayes.config import RUN_LENGTH_FIELDS, TrainConfig, trajectory_fields
from vbayes.errors import UserError

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"


class WorkdirError(UserError):
  """The workdir cannot be used by this run; the message says why and what to do."""


def _unusable(workdir: Path, e: OSError) -> WorkdirError:
  reason = e.strerror or str(e)
  if isinstance(e, NotADirectoryError) or e.errno == errno.ENOTDIR:
    reason = "it or a folder above it is a file"
  elif isinstance(e, FileExistsError):
    reason = "a file of that name exists"
  elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
    reason = f"it is not writable ({e.strerror})"
  return WorkdirError(f"cannot use workdir {workdir}: {reason}; choose a writable folder "
                      "with --workdir")


@contextlib.contextmanager
def open_locked(workdir: str | Path):
  """Creates `workdir` if needed and holds its lock for the duration of the block."""
  workdir = Path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    if not workdir.is_dir():
      raise FileExistsError(errno.EEXIST, "exists", str(workdir))
    fd = os.open(workdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise _unusable(workdir, e) from e
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
      raise WorkdirError(f"workdir {workdir} is in use by another run (pid {holder}); wait for "
                         "it to finish or use another --workdir") from None
    try:
      os.ftruncate(fd, 0)
      os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as e:
      raise _unusable(workdir, e) from e
    yield
  finally:
    os.close(fd)  # releases the flock


def run_files(workdir: Path) -> list[Path]:
  """The workdir's entries that a run wrote: not its lock file, nor temporary files or an
  empty checkpoints/ left by a run that failed before writing its config."""
  def leftover(p: Path) -> bool:
    return (p.name == LOCK_FILE or p.name.endswith(".tmp")
            or (p.name == "checkpoints" and p.is_dir() and not any(p.iterdir())))
  return [p for p in workdir.iterdir() if not leftover(p)]


def check(config: TrainConfig, workdir: Path):
  """Refuses a workdir holding a run with another config, or anything else.

  Fields in config.RUN_LENGTH_FIELDS (epochs, evaluation settings) may differ: a
  run can be resumed to train longer or be evaluated with another k.
  """
  path = workdir / CONFIG_FILE
  if path.exists():
    try:
      raw = json.loads(path.read_text())
      # Fields a resumed run may change are taken from the new config, so that an old
      # value a newer vbayes refuses (e.g. quadrature_points=32) does not block a resume.
      raw.update({name: getattr(config, name) for name in RUN_LENGTH_FIELDS})
      old = TrainConfig.from_dict(raw)
    except Exception as e:
      raise WorkdirError(f"{path} is not a vbayes config ({e}); use another --workdir") from e
    old_fields, new_fields = trajectory_fields(old), trajectory_fields(config)
    if old_fields != new_fields:
      diff = _diff(old_fields, new_fields)
      raise WorkdirError(f"workdir {workdir} holds a run with a different config ({diff}); "
                         "use another --workdir or the same settings")
  elif run_files(workdir):
    raise WorkdirError(f"workdir {workdir} is not empty and holds no {CONFIG_FILE}; "
                       "use an empty or new --workdir")


def written_epochs(workdir: Path) -> int | None:
  """The epochs of the config.json in `workdir` (None without one)."""
  path = workdir / CONFIG_FILE
  return json.loads(path.read_text())["epochs"] if path.exists() else None


def replace_atomically(path: Path, write: Callable[[BinaryIO], None]):
  """Replaces `path` by what write(f) writes into a temporary file of its own beside it,
  renamed into place (removed on failure: `path` is never half-written); the file gets the
  usual permissions (umask), not mkstemp's owner-only ones."""
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


def write_atomically(path: Path, text: str):
  """`path` replaced by `text` (UTF-8), atomically (`replace_atomically`)."""
  replace_atomically(path, lambda f: f.write(text.encode()))


def write_array_atomically(path: Path, array):
  """np.save of `array` as float32 into `path`, atomically (`replace_atomically`)."""
  replace_atomically(path, lambda f: np.save(f, np.asarray(array, np.float32)))


def write_config(config: TrainConfig, workdir: Path):
  """Writes config.json atomically."""
  write_atomically(workdir / CONFIG_FILE, config.to_json())


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
