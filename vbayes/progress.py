"""Progress of a long host-side loop: 'what: done/total (rate, ETA)' at most every few seconds.

    progress = Progress("evaluation", total=len(images), unit="images", log=print)
    for ...:
      ...dispatch a jitted step...
      progress.update(done, wait_for=result)   # blocks on `result` only when it logs

Lines are written from outside the jitted code, between its calls: the loop syncs
with the device only when a line is due, never per step.
"""

import time
from typing import Callable

import jax


EVERY_SECONDS = 10.0  # the default interval between progress lines


class Progress:
  """Logs the progress of `total` units of work at most every `every` seconds."""

  def __init__(self, what: str, total: int, unit: str, log: Callable[[str], None] | None,
               every: float | None = None):
    self.what, self.total, self.unit, self.log = what, total, unit, log
    self.every = EVERY_SECONDS if every is None else every
    self.start = self.last = time.perf_counter()

  def update(self, done: int, wait_for=None):
    """Records that `done` units are dispatched; logs if a line is due (after blocking on
    `wait_for`, so that the rate counts finished work)."""
    if self.log is None or time.perf_counter() - self.last < self.every or done >= self.total:
      return
    if wait_for is not None:
      jax.block_until_ready(wait_for)
    now = time.perf_counter()
    self.last = now
    rate = done / max(now - self.start, 1e-9)
    self.log(f"{self.what}: {done}/{self.total} {self.unit} ({rate:.3g} {self.unit}/s, "
             f"ETA {(self.total - done) / max(rate, 1e-9):.0f}s)")

  def seconds(self) -> float:
    return time.perf_counter() - self.start
