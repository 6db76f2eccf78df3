"""What every experiment script shares: flags parsed with one-line errors, the
library's errors printed as one `error:` line with exit status 1, the --config and
--set flags, and the results tables.

    if __name__ == "__main__":
      common.run(main)       # instead of absl.app.run(main)
"""

import functools
import logging as std_logging
import os
import sys

import jax
import numpy as np
from absl import app, flags, logging

from experiments import configs
from vbayes import data as data_lib
from vbayes import distributed, liveness, overrides
from vbayes.config import TrainConfig
from vbayes.errors import UserError

# What a user can act on. ValueError covers checks in library code that name the bad
# value; OSError names the file the system refused (a full disk, a missing folder).
USER_ERRORS = (UserError, ValueError, OSError)


def fail(message: str, at_once: bool = False):
  """Prints `error: message` on one line to stderr and exits with status 1. at_once: at
  once, without JAX's exit barrier, which waits for every process of a run of several
  (and aborts this one when another has died)."""
  print("error: " + " ".join(str(message).split()), file=sys.stderr, flush=True)
  if at_once:
    sys.stdout.flush()
    os._exit(1)  # pylint: disable=protected-access
  sys.exit(1)


def out_of_memory(error: Exception) -> str:
  """One line for an allocation that failed: what ran out, and what to change."""
  first = next((line.strip() for line in str(error).splitlines() if "RESOURCE_EXHAUSTED" in line),
               "RESOURCE_EXHAUSTED")
  return (f"out of memory ({first[:200]}); use a smaller model (--latent_dim, --hidden_sizes), "
          "--batch_size, --eval_batch_size or --quadrature_points; nothing more was written")


def parse_flags(argv):
  """absl's parser, with a bad or missing flag as one error line instead of a FATAL."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(f"{e}; run with --help to see the flags")


class _DropOrbaxLogs(std_logging.Filter):
  """Orbax (and asyncio, for Orbax's background writes) log a traceback for each failed
  write; vbayes reports the failure itself (checkpoint.CheckpointError), in one line."""

  def filter(self, record):
    if "/orbax/" in record.pathname.replace("\\", "/"):
      return False
    if record.name == "asyncio":
      text = record.getMessage() + str(record.exc_info[1] if record.exc_info else "")
      return "OCDBT" not in text and "orbax" not in text
    return True


_DROP_ORBAX_LOGS = _DropOrbaxLogs()


def _ignore_closed_event_loops(unraisable):
  """Orbax's background event loops can be collected after they closed, which Python
  reports as an ignored 'Event loop is closed' error after the script's own last line."""
  if not (isinstance(unraisable.exc_value, RuntimeError)
          and str(unraisable.exc_value) == "Event loop is closed"):
    sys.__unraisablehook__(unraisable)


def _runtime_error_in(error: BaseException) -> BaseException | None:
  """A JaxRuntimeError among the causes of `error`, if any."""
  while error is not None:
    if isinstance(error, jax.errors.JaxRuntimeError):
      return error
    error = error.__cause__ or error.__context__
  return None


def _another_process_stopped(error: BaseException):
  fail(f"another process of the run stopped or cannot be reached "
       f"({distributed.first_line(error)}); its own output says why; this one stops too",
       at_once=True)


def with_errors(main):
  """Wraps a script's main: the library's errors become one 'error:' line and exit 1."""

  @functools.wraps(main)
  def wrapped(argv):
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it writes at INFO.
    logging.get_absl_handler().addFilter(_DROP_ORBAX_LOGS)  # once: a filter is a set member
    std_logging.getLogger("asyncio").addFilter(_DROP_ORBAX_LOGS)
    sys.unraisablehook = _ignore_closed_event_loops
    try:
      return main(argv)
    except distributed.PeerLost as e:
      fail(e, at_once=True)
    except USER_ERRORS as e:
      several = distributed.several_processes()
      cause = _runtime_error_in(e)
      if several and (cause is not None or "Gloo" in str(e)):  # a collective failed
        _another_process_stopped(cause or e)
      # Several processes: every error but a disagreement (which all of them raise at one
      # barrier) may be this process's alone; JAX's exit would wait for the others.
      fail(e, at_once=several and not isinstance(e, distributed.ProcessesDisagree))
    except jax.errors.JaxRuntimeError as e:
      if "RESOURCE_EXHAUSTED" in str(e):
        fail(out_of_memory(e))
      if distributed.several_processes():  # a collective failed: a peer stopped
        _another_process_stopped(e)
      raise

  return wrapped


def run(main):
  """absl.app.run(main) with one-line errors for flags and for the library's errors."""
  app.run(with_errors(main), flags_parser=parse_flags)


def define_data_flags():
  """--manual_dir and --data_dir, where tfds finds offline files and keeps datasets."""
  flags.DEFINE_string("manual_dir", None, "Folder like ../shared/data for offline tfds "
                      f"preparation (default: ${data_lib.MANUAL_DIR_ENV}).")
  flags.DEFINE_string("data_dir", None, f"tfds data dir (default: ${data_lib.DATA_DIR_ENV} "
                      "or ~/tensorflow_datasets).")


def define_process_flags():
  """--num_processes, --process_id, --coordinator_address: one run over several processes
  (JAX's multi-controller runtime, vbayes.distributed); defaults from the environment
  variables JAX_NUM_PROCESSES, JAX_PROCESS_ID and JAX_COORDINATOR_ADDRESS."""
  flags.DEFINE_string("num_processes", os.environ.get("JAX_NUM_PROCESSES", "1"),
                      "Processes of this run: 1; N, each started with its --process_id and "
                      "the same --coordinator_address and other flags (they check); or "
                      "auto, where JAX finds them on a cluster it knows (Cloud TPU, SLURM, "
                      "Open MPI). A process that has not joined --join_timeout seconds "
                      f"after the first, or is silent for {liveness.SILENT_S} s, ends "
                      "the run; "
                      "SIGTERM or SIGINT to any process stops all at one step after a "
                      "checkpoint. Default $JAX_NUM_PROCESSES or 1.")
  flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes - 1 "
                       "(default $JAX_PROCESS_ID or 0).", lower_bound=0)
  flags.DEFINE_integer("join_timeout", distributed.JOIN_TIMEOUT_S, "Seconds a process of "
                       "several waits for all to join before the run ends with an error.",
                       lower_bound=1)
  flags.DEFINE_string("coordinator_address", os.environ.get("JAX_COORDINATOR_ADDRESS"),
                      "host:port of process 0, the same for every process (default "
                      "$JAX_COORDINATOR_ADDRESS).")


def start_processes():
  """jax.distributed.initialize as the process flags say (nothing for one process)."""
  text = flags.FLAGS.num_processes.strip().lower()
  if text == "auto":
    distributed.initialize(detect_cluster=True, join_timeout_s=flags.FLAGS.join_timeout)
    _agree_on_the_command_line()
    return
  try:
    count = int(text)
  except ValueError:
    count = 0
  if count < 1:
    raise ValueError(f"--num_processes={flags.FLAGS.num_processes} is neither a positive "
                     "integer nor auto")
  process_id = flags.FLAGS.process_id
  if process_id is None:  # read here, not at import, so that a bad value is one error line
    text = os.environ.get("JAX_PROCESS_ID", "0")
    if not text.strip().isdigit():
      raise ValueError(f"JAX_PROCESS_ID={text!r} is not a process index: set it to 0 .. "
                       f"{count - 1}, or pass --process_id")
    process_id = int(text)
  if process_id >= count:
    raise ValueError(f"--process_id={process_id} (or $JAX_PROCESS_ID) is outside 0 .. "
                     f"{count - 1} for --num_processes={count}")
  distributed.initialize(flags.FLAGS.coordinator_address, count, process_id,
                         join_timeout_s=flags.FLAGS.join_timeout)
  _agree_on_the_command_line()


# Flags that may differ between the processes of one run: the id, and where each host
# finds the coordinator and its own copy of the data.
PER_PROCESS_FLAGS = ("process_id", "coordinator_address", "data_dir", "manual_dir")


def _agree_on_the_command_line():
  """Every process of a run must have the script's flags alike, but --process_id."""
  script = sys.argv[0]  # absl files a script's own flags under its path
  mine = {f"--{flag.name}": flag_text(flag.name)
          for owner, owned in flags.FLAGS.flags_by_module_dict().items()
          if owner in (script, "__main__") or owner.startswith("experiments.")
          for flag in owned if flag.name not in PER_PROCESS_FLAGS}
  distributed.agree({"script": os.path.basename(script), **mine})


def define_config_flags(default: str | None):
  """--config (a config of experiments/configs/ or a .py file; `default` without it)
  and --set=path=value (repeatable), which overrides one of its fields."""
  flags.DEFINE_string(
      "config", default, "The study's config: a name in experiments/configs/ "
      f"({', '.join(configs.names())}) or a .py file with get_config()"
      + ("" if default else "; without it, the defaults of vbayes.config.TrainConfig") + ".")
  flags.DEFINE_multi_string(
      "set", [], "path=value: set one field of the config, e.g. --set=model.latent_dim=5, "
      "--set=objective.k=10; for a study of several runs, --set=<run>.<path>=value sets "
      "one run's and --set=seeds=0,1 its seeds. Applied after the other flags.")


def flag_text(name: str) -> str:
  """A flag's value as override text: lists comma-joined, bools true/false."""
  value = flags.FLAGS[name].value
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, (list, tuple)):
    return ",".join(str(v) for v in value)
  return str(value)


def config_from_flags(shorthands: dict[str, tuple[str, ...]] = (), base=None,
                      extra: dict[str, str] | None = None):
  """--config's get_config() (`base` when --config is not given), with the fields each
  flag of `shorthands` (flag -> config paths) sets when it is on the command line,
  then `extra`, then each --set."""
  config = configs.load(flags.FLAGS.config) if flags.FLAGS.config else base
  if config is None:
    config = TrainConfig()
  settings = {}
  for flag, paths in dict(shorthands).items():
    if flags.FLAGS[flag].present:
      settings.update({path: flag_text(flag) for path in paths})
  settings.update(extra or {})
  for assignment in flags.FLAGS.set:
    path, text = overrides.parse_assignment(assignment)
    settings[path] = text
  return overrides.with_overrides(config, settings)


def mean_and_spread(values) -> str:
  """'mean ± s' with the sample sd s = sqrt(sum_i (v_i - mean)^2 / (n - 1)) over n
  seeds (ddof=1); one seed has no s."""
  v = np.asarray(values, np.float64)
  if len(v) < 2:
    return f"{v.mean():.3f} (one seed)"
  return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"
