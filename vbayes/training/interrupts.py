"""SIGTERM and SIGINT during training: every process stops after the same chunk, after a
checkpoint, instead of one dying and the others waiting at their next collective.

While training runs, both signals only set a flag (the first one; a second signal acts
as it would without vbayes: SIGINT raises KeyboardInterrupt, SIGTERM ends the process).
After each chunk the training loop asks `reached()`: on one process, whether a signal
came; on several, whether one came to any of them (a 4-byte all-gather of the flags, so
that every process answers alike after the same chunk). JAX's own preemption service is
not used: Orbax's checkpoint manager feeds its step counter too, which would move the
agreed stop to a step the loop never reports.
"""

import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

from vbayes.errors import UserError

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(UserError):
  """The run was stopped by a signal, after a checkpoint from which it resumes."""


class Interrupts:
  """While open (a context manager), SIGTERM and SIGINT request a stop, and `reached()`
  says whether every process stops after the chunk that just ran."""

  def __init__(self):
    self.received = None  # the name of the first signal received here (or, after reached(),
    self._previous = {}   # by any process)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():  # signals reach it alone
      for sig in SIGNALS:
        self._previous[sig] = signal.getsignal(sig)
        signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    self._restore()

  def _restore(self):
    for sig, handler in self._previous.items():
      # None: a handler not installed from Python (JAX's preemption notifier); the
      # default action then, as after it.
      signal.signal(sig, signal.SIG_DFL if handler is None else handler)
    self._previous.clear()

  def _handle(self, signum, frame):
    del frame
    self.received = self.received or signal.Signals(signum).name
    self._restore()  # a second signal acts at once

  def reached(self) -> bool:
    """Whether the run stops now: a signal came (to any process of the run)."""
    if jax.process_count() == 1:
      return self.received is not None
    flags = np.asarray(multihost_utils.process_allgather(
        np.int32(0 if self.received is None else 1 + SIGNALS.index(
            signal.Signals[self.received]))))
    if not flags.any():
      return False
    self.received = self.received or SIGNALS[int(flags.max()) - 1].name
    return True
