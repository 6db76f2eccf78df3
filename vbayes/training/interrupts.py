"""SIGTERM and SIGINT during training: every process stops at the same chunk, after a
checkpoint, instead of one dying and the others waiting at their next collective.

One process: a signal sets a flag that the training loop reads after each chunk. Several
processes: JAX's preemption service turns a SIGTERM that any process receives into one
chunk index at which every process's `reached(i)` is true (the largest index any of them
had reached, plus one); SIGINT is passed on to it as a SIGTERM.
"""

import signal
import threading

import jax
from jax.experimental import multihost_utils

from vbayes.errors import UserError


class RunInterrupted(UserError):
  """The run was stopped by a signal, after a checkpoint from which it resumes."""


class Interrupts:
  """While open (a context manager), SIGTERM and SIGINT request a stop, and
  `reached(chunk)` says whether this chunk is where every process stops."""

  def __init__(self):
    self.received = None  # the name of the first signal received, if any
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      return self  # signals reach the main thread alone
    several = jax.process_count() > 1
    for sig in (signal.SIGINT,) if several else (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()

  def _handle(self, signum, frame):
    del frame
    self.received = self.received or signal.Signals(signum).name
    if jax.process_count() > 1:  # JAX's preemption service listens for SIGTERM
      signal.raise_signal(signal.SIGTERM)

  def reached(self, chunk: int) -> bool:
    """Whether the run stops after chunk number `chunk` (0, 1, ... on every process)."""
    if jax.process_count() > 1:
      try:
        reached = multihost_utils.reached_preemption_sync_point(chunk)
      except RuntimeError:  # JAX's preemption service is off (jax_enable_preemption_service)
        return False
      if reached:
        self.received = self.received or "SIGTERM"
      return reached
    return self.received is not None
