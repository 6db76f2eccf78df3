"""The command line as a user meets it, run inside the test process: `main(argv)` of an
experiments/ script, with absl's parsing and the script's own error handling
(`experiments.common`), its output captured.

absl keeps one global flag registry, and the scripts define flags of the same names
(--workdir, --seed): `run_main` gives the registry to one script at a time, taking out
the flags of the script that had it and putting in the next one's (`_take_flags`).
"""

import contextlib
import importlib
import io
import os
import sys
import traceback
from pathlib import Path

from absl import flags

from experiments import common
from vbayes import datasets

_FLAGS_OF = {}  # experiments module: {flag name: Flag} that importing it defined
_MODULES = {}  # experiments module name: the module imported with those flags
_OWNER = [None]  # the experiments module whose flags the registry holds


def _experiments_flags() -> list[str]:
  """The names of the registered flags that experiments/ modules defined."""
  return [flag.name for owner, owned in flags.FLAGS.flags_by_module_dict().items()
          if owner.startswith("experiments.") for flag in owned]


def _take_flags(module_name: str):
  """experiments.<module_name>'s module, with its flags (and only its) registered.

  The first time, every experiments/ flag is taken out of the registry and the module
  imported afresh (with the helpers that define flags when imported), and the flags it
  defined are kept; later, they are put back."""
  full_name = f"experiments.{module_name}"
  registry = flags.FLAGS
  if _OWNER[0] == full_name:
    return _MODULES[full_name]
  for name in set(_experiments_flags()) | set(_FLAGS_OF.get(_OWNER[0], {})):
    if name in registry:
      delattr(registry, name)
  if full_name in _FLAGS_OF:
    for name, flag in _FLAGS_OF[full_name].items():
      registry[name] = flag
  else:
    for name in [n for n in sys.modules if n.startswith("experiments.")
                 and n not in ("experiments.common",) and not n.startswith("experiments.configs")]:
      del sys.modules[name]
      package, _, child = name.rpartition(".")
      if hasattr(sys.modules.get(package), child):  # or `from experiments import x` finds it
        delattr(sys.modules[package], child)
    _MODULES[full_name] = importlib.import_module(full_name)
    _FLAGS_OF[full_name] = {name: registry[name] for name in _experiments_flags()}
  _OWNER[0] = full_name
  return _MODULES[full_name]


@contextlib.contextmanager
def _environment(env: dict):
  """os.environ with `env`'s variables set (None: unset), restored after."""
  before = {name: os.environ.get(name) for name in env}
  try:
    for name, value in env.items():
      if value is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = str(value)
    yield
  finally:
    for name, value in before.items():
      if value is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = value


def run_main(argv: list[str], module: str = "train", env: dict | None = None) -> dict:
  """experiments.<module>'s main on `argv`, as `python -m experiments.<module> ARGV`
  runs it, with `env` in the environment (a None value unsets a variable; the offline
  data's $VBAYES_MANUAL_DIR is unset unless `env` sets it): {"argv", "code" (exit
  status, or "traceback"), "stdout", "stderr"}."""
  main = _take_flags(module).main
  flags.FLAGS.unparse_flags()
  out, err, code = io.StringIO(), io.StringIO(), 0
  hook = sys.unraisablehook  # common.with_errors replaces it for the process
  with (_environment({datasets.MANUAL_DIR_ENV: None, **(env or {})}),
        contextlib.redirect_stderr(err), contextlib.redirect_stdout(out)):
    try:
      common.with_errors(main)(common.parse_flags([module, *map(str, argv)]))
    except SystemExit as e:
      code = e.code
    except BaseException:  # pylint: disable=broad-except
      traceback.print_exc()
      code = "traceback"
    finally:
      sys.unraisablehook = hook
  return {"argv": list(map(str, argv)), "code": code, "stdout": out.getvalue(),
          "stderr": err.getvalue()}


def snapshot(folder: Path) -> dict:
  """Every file's bytes, but the lock file's (which holds the pid of the last run)."""
  return {p: p.read_bytes() for p in sorted(folder.rglob("*"))
          if p.is_file() and p.name != ".lock"}


def assert_one_error_line(stderr: str, message: str):
  """stderr is one `error:` line (under 400 characters) that contains `message`."""
  lines = [line for line in stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), stderr
  assert message in lines[0], (message, lines[0])
  assert len(lines[0]) < 400


def succeeded(result: dict):
  assert result["code"] == 0, (result["argv"], result["stderr"][-3000:])
