"""How the processes of one run notice that one of them stopped answering, and end with
one error line instead of JAX's abort (vbayes.distributed starts all of it).

    runtime_errors_end_the_process()   around jax.distributed.initialize: the runtime
                                       client's fatal-error callback is `end_the_run`
    watch_the_other_processes()        after it: beats, and a watch on the others'

JAX's coordination service ends a run whose process sends no heartbeat for
HEARTBEAT_TIMEOUT_S with an abort and a C++ stack; a process stopped but not dead
(SIGSTOP, a hung host) would end the others that way. vbayes' own beats, every BEAT_S
through the coordinator's key-value store, end them first, SILENT_S after its last.
"""

import atexit
import contextlib
import itertools
import os
import sys
import threading
import time

import jax

HEARTBEAT_TIMEOUT_S = 30
BEAT_S, SILENT_S = 2, 20


def end_the_run(status):
  """The runtime client's callback for a fatal error of the run (a process did not join in
  time, or stopped sending heartbeats): one error line, exit 1.

  JAX's own callback aborts the process with a stack trace. jaxlib 0.10 cannot pass the
  status to a Python callback (std::bad_cast): the runtime call that met the error then
  raises RuntimeError instead (`initialize` makes it one error line), and an error met on
  the runtime's own heartbeat thread would still abort the process: the beats of
  `watch_the_other_processes` end it before that."""
  text = " ".join(str(status).split())
  if "RegisterTask" in text or "Barrier" in text:
    cause = ("not every process of the run joined in time: start every process, each with "
             "its own --process_id and the same --num_processes and --coordinator_address")
  else:
    cause = (f"another process of the run stopped or has not answered for "
             f"{HEARTBEAT_TIMEOUT_S} s (its own output says why); this one stops too")
  print(f"error: {cause} ({text[:160]})", file=sys.stderr, flush=True)
  os._exit(1)  # pylint: disable=protected-access


def watch_the_other_processes():
  """Beats for this process and watches the others' (threads, for the run's lifetime):
  a process whose beats stop for SILENT_S while it has not ended cleanly, or a
  coordinator that answers no call for as long, ends this one with one error line, before
  JAX's heartbeat timeout (HEARTBEAT_TIMEOUT_S) would abort it. A process that ends
  cleanly says so first (atexit, before JAX's own shutdown), so that the others wait; one
  that fails exits at once (experiments.common) and is silent. After a stall of this
  process itself (stopped, a paused VM) the clocks restart: it blames no one for it."""
  from jax._src import distributed as jax_distributed  # pylint: disable=g-import-not-at-top
  client, me = jax_distributed.global_state.client, jax.process_index()
  stop = threading.Event()
  lock = threading.Lock()
  answered = [time.monotonic()]  # the coordinator's last answer
  # Each process's id: (its last beat, when that changed).
  heard = {str(i): ("", answered[0]) for i in range(jax.process_count())}

  def beat():
    for count in itertools.count():
      if stop.wait(BEAT_S if count else 0):
        return
      try:
        client.key_value_set(f"vbayes/alive/{me}", str(count), allow_overwrite=True)
        beats = dict(client.key_value_dir_get("vbayes/alive/"))
      except Exception:  # pylint: disable=broad-except
        continue  # the watch below ends the process when this lasts
      with lock:
        now = answered[0] = time.monotonic()
        for key, value in beats.items():
          process = key.rsplit("/", 1)[-1]
          if heard.get(process, ("", 0.0))[0] != value:
            heard[process] = (value, now)

  def watch():
    last = time.monotonic()
    while not stop.wait(1.0):
      now = time.monotonic()
      with lock:
        if now - last > 3 * BEAT_S:  # this process stalled: nobody else's silence
          answered[0] = now
          heard.update({p: (value, now) for p, (value, _) in heard.items()})
        last = now
        silent = [process for process, (value, since) in heard.items()
                  if value != "ended" and now - since > SILENT_S]
        coordinator_silent = now - answered[0] > SILENT_S
      if coordinator_silent:
        cause = f"the run's coordinator (process 0) has not answered for {SILENT_S} s"
      elif silent:
        cause = (f"process {silent[0]} of the run has not answered for {SILENT_S} s "
                 "(stopped, hung or unreachable)")
      else:
        continue
      print(f"error: {cause}; this process stops too", file=sys.stderr, flush=True)
      os._exit(1)  # pylint: disable=protected-access

  threads = [threading.Thread(target=body, name=f"vbayes-{body.__name__}", daemon=True)
             for body in (beat, watch)]

  def ended():  # the last beat first, so that none lands after "ended"
    stop.set()
    for thread in threads:
      thread.join(timeout=SILENT_S)
    with contextlib.suppress(Exception):
      client.key_value_set(f"vbayes/alive/{me}", "ended", allow_overwrite=True)

  for thread in threads:
    thread.start()
  atexit.register(ended)  # runs before jax.distributed's shutdown, registered earlier


@contextlib.contextmanager
def runtime_errors_end_the_process():
  """Within it, jax.distributed.initialize gives its runtime client `end_the_run` as the
  callback for fatal errors (jax.distributed.initialize has no argument for it)."""
  from jax._src import distributed as jax_distributed  # pylint: disable=g-import-not-at-top
  runtime = jax_distributed._jax  # pylint: disable=protected-access
  make_client = runtime.get_distributed_runtime_client

  def client_with_callback(*args, **kwargs):
    kwargs.setdefault("missed_heartbeat_callback", end_the_run)
    return make_client(*args, **kwargs)

  runtime.get_distributed_runtime_client = client_with_callback
  try:
    yield
  finally:
    runtime.get_distributed_runtime_client = make_client
