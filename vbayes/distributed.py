"""Several processes, one program: JAX's multi-controller runtime.

    distributed.initialize(coordinator_address="10.0.0.1:1234", num_processes=2, process_id=0)
    ...                                  # then the same code as on one process

Each of N processes (one per host, or per GPU) runs the same program. After
`initialize`, jax.devices() lists every device of every process and the training
mesh spans them all: the step is one SPMD program and XLA's all-reduce crosses
processes (over the network between hosts; through gloo between CPU processes).
Parameters, keys and the dataset are replicated on the global mesh, so each device
gathers its shard of every batch inside the jitted step; nothing is fed per step.
Process 0 (`is_primary`) writes the workdir's config, metrics and figures; every
process takes part in Orbax's checkpoint writes and reads, and evaluation shares
its image batches among processes (`my_batches`, `gather_batches`).
"""

import contextlib
import itertools
import json
import os
import socket
from typing import Any, Callable, Iterator, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

from vbayes import liveness
from vbayes.errors import UserError

T = TypeVar("T")

# A run of several processes fails together, fast: a process that has not joined
# JOIN_TIMEOUT_S after the first (by default; --join_timeout) ends every process; so does
# one that does not state its run (`agree`) within AGREE_TIMEOUT_S, and one that stops
# answering (vbayes.liveness).
JOIN_TIMEOUT_S = 45
AGREE_TIMEOUT_S = 30
_AGREEMENTS = itertools.count()  # every process calls `agree` equally often, in one order


class ProcessStopped(UserError):
  """Another process of the run stopped with an error (its own output names it)."""


class ProcessesDisagree(UserError):
  """The processes of one run were started for different runs (every process knows)."""


class PeerLost(UserError):
  """A process of the run is missing, died or cannot be reached: this process must end at
  once, without JAX's exit barrier (which waits for every process)."""


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, detect_cluster: bool = False,
               join_timeout_s: int = JOIN_TIMEOUT_S):
  """Starts JAX's distributed runtime before anything else touches a device.

  With num_processes > 1 the three arguments name the run (process 0 serves as
  coordinator at coordinator_address, host:port); with detect_cluster, JAX finds
  them itself on the clusters it knows (Cloud TPU, SLURM, Open MPI, ...). Otherwise
  a no-op: one process. CPU processes exchange their collectives through gloo.
  """
  if not detect_cluster and (num_processes is None or num_processes <= 1):
    return
  if not detect_cluster and (coordinator_address is None or process_id is None):
    raise ValueError(f"a run of {num_processes} processes needs the coordinator's address "
                     "(host:port, the same for all) and each process's id (0 to "
                     f"{num_processes - 1})")
  if not detect_cluster and not 0 <= process_id < num_processes:
    raise ValueError(f"process id {process_id} is outside 0..{num_processes - 1}")
  if not detect_cluster:
    host, _, port = coordinator_address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 2**16:
      raise ValueError(f"--coordinator_address={coordinator_address} is not host:port (a port "
                       "1..65535, e.g. 10.0.0.1:8476), the same for every process")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # A process that has not joined in join_timeout_s, or sent no heartbeat for
  # HEARTBEAT_TIMEOUT_S, ends the run; an exit waits that long for the others, not 5 min.
  timeouts = {"initialization_timeout": join_timeout_s,
              "heartbeat_timeout_seconds": liveness.HEARTBEAT_TIMEOUT_S,
              "shutdown_timeout_seconds": liveness.HEARTBEAT_TIMEOUT_S}
  try:
    with liveness.runtime_errors_end_the_process():
      if detect_cluster:
        jax.distributed.initialize(**timeouts)
      else:
        jax.distributed.initialize(coordinator_address, num_processes, process_id, **timeouts)
  except (jax.errors.JaxRuntimeError, RuntimeError) as e:
    if "only be called once" in str(e):
      raise
    where = f" at {coordinator_address}" if coordinator_address else ""
    how_many = num_processes or "cluster's"
    detail = f" ({first_line(e)})" if isinstance(e, jax.errors.JaxRuntimeError) else ""
    raise PeerLost(
        f"the {how_many} processes of the run did not all join the coordinator{where} "
        f"within {join_timeout_s} s{detail}: start every process, each with its own "
        "--process_id and the same --num_processes and --coordinator_address") from e
  liveness.watch_the_other_processes()


def several_processes() -> bool:
  """Whether this process is one of a run of several (jax.distributed is initialized);
  unlike jax.process_count(), it starts no backend."""
  from jax._src import distributed as jax_distributed  # pylint: disable=g-import-not-at-top
  return jax_distributed.global_state.client is not None


def first_line(error: Exception, limit: int = 160) -> str:
  """The first line of an error's message, shortened (the runtime's run to many lines)."""
  return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
  return {prefix.rstrip("."): tree}


def agree(what: dict[str, Any], timeout_s: float = AGREE_TIMEOUT_S):
  """Checks that every process of the run states the same `what` (its config, workdir).

  Each process writes `what` under its process id in the coordinator's key-value store,
  reads every other's and waits for all at a barrier; then, on every process alike, a
  value that differs raises ProcessesDisagree naming the first field that differs. An id
  written twice (two processes given one --process_id) or a process that does not answer
  within timeout_s raises PeerLost. One process: nothing to check.
  """
  count = jax.process_count()
  if count == 1:
    return
  from jax._src import distributed as jax_distributed  # pylint: disable=g-import-not-at-top
  client = jax_distributed.global_state.client
  me, round_ = jax.process_index(), next(_AGREEMENTS)
  timeout_ms = int(timeout_s * 1000)
  mine = json.loads(json.dumps(what, sort_keys=True, default=str))
  stated = json.dumps({"by": f"{socket.gethostname()} pid {os.getpid()}", "what": mine})
  try:
    client.key_value_set(f"vbayes/agree/{round_}/{me}", stated)
  except jax.errors.JaxRuntimeError as e:
    if "ALREADY_EXISTS" in str(e):
      raise PeerLost(f"another process of the run was also started as process {me}: give "
                     f"each of the {count} processes its own --process_id, 0 .. {count - 1}"
                     ) from e
    raise PeerLost(f"the run's coordinator cannot be reached ({first_line(e, 80)})") from e
  disagreement = None
  try:
    for other in range(count):
      if other == me:
        continue
      theirs = json.loads(client.blocking_key_value_get(f"vbayes/agree/{round_}/{other}",
                                                        timeout_ms))
      ours, differing = _flat(mine), _flat(theirs["what"])
      for key in sorted(set(ours) | set(differing)):
        if disagreement is None and ours.get(key) != differing.get(key):
          disagreement = (
              f"process {other} ({theirs['by']}) runs with {key} = {differing.get(key)!r} "
              f"and process {me} with {ours.get(key)!r}: start every process of a run with "
              "the same flags")
    client.wait_at_barrier(f"vbayes/agreed/{round_}", timeout_ms)
  except jax.errors.JaxRuntimeError as e:
    raise PeerLost(f"not every process of the {count} stated its run within {timeout_s:g} s "
                   f"({first_line(e, 80)}): one stopped or runs another program") from e
  if disagreement is not None:
    raise ProcessesDisagree(disagreement)


def is_primary() -> bool:
  """True on process 0, the one that writes the workdir's files and prints progress."""
  return jax.process_index() == 0


def primary_first(fn: Callable[[], T]) -> T | None:
  """fn() on process 0 while the others wait; fn's value there, None elsewhere.

  An error that fn raises on process 0 stops every process: there it is raised as
  it is; the others raise ProcessStopped. (Without this, the others would wait at
  their next collective until the runtime's timeout.)
  """
  if jax.process_count() == 1:
    return fn()
  error, value = None, None
  if is_primary():
    try:
      value = fn()
    except Exception as e:  # pylint: disable=broad-except
      error = e
  failed = multihost_utils.broadcast_one_to_all(np.int32(error is not None))
  if error is not None:
    raise error
  if int(failed):
    raise ProcessStopped("process 0 stopped before training (its error line says why); "
                         "this process stops too")
  return value


@contextlib.contextmanager
def on_primary(context: Callable[[], contextlib.AbstractContextManager]) -> Iterator[None]:
  """Holds context() on process 0 for the block (e.g. the workdir's lock); the others
  enter the block once process 0 holds it, and none does if entering it failed."""
  with contextlib.ExitStack() as stack:
    primary_first(lambda: stack.enter_context(context()))
    yield


def local_copy(tree):
  """Each array of a tree replicated on a mesh (of this process's devices or of all
  processes') as an array on this process's first device of it: for work a process does
  on its own (evaluating its share of images)."""
  def local(a):
    if isinstance(a, jax.Array) and len(a.sharding.device_set) > 1:
      return a.addressable_data(0)
    return a
  return jax.tree.map(local, tree)


def broadcast(value: float) -> float:
  """Process 0's `value` on every process (a decision all must take alike)."""
  if jax.process_count() == 1:
    return value
  return float(multihost_utils.broadcast_one_to_all(np.float64(value)))


def my_batches(num_batches: int) -> range:
  """Batch indices this process evaluates: i = process_index (mod process_count)."""
  return range(jax.process_index(), num_batches, jax.process_count())


def gather_batches(local: list[np.ndarray], num_batches: int, shape: tuple[int, ...],
                   dtype=np.float32) -> list[np.ndarray]:
  """Every process's batches, each an array of `shape` and `dtype` (this process's
  `local`, in `my_batches` order), in batch order 0..num_batches-1 on every process."""
  count = jax.process_count()
  if count == 1:
    return [np.asarray(b, dtype) for b in local]
  padded = np.zeros((-(-num_batches // count), *shape), dtype)  # [rounds, ...]
  for r, batch in enumerate(local):
    padded[r] = batch
  everything = np.asarray(multihost_utils.process_allgather(padded))  # [P, rounds, ...]
  return [everything[i % count, i // count] for i in range(num_batches)]
