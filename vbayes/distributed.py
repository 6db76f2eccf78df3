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
from typing import Callable, Iterator, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

from vbayes.errors import UserError

T = TypeVar("T")


class ProcessStopped(UserError):
  """Another process of the run stopped with an error (its own output names it)."""


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, detect_cluster: bool = False):
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
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if detect_cluster:
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


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
