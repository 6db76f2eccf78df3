"""The suite's settings and the fixtures every tier shares. Tests run on the JAX CPU
backend and never touch the network.

Three tiers, each a folder whose tests carry its marker (`-m unit`, or a path):
  tests/unit         the library's functions on tiny generated inputs;
  tests/integration  the command line in process (`main(argv)`), workdirs, data, README;
  tests/system       what needs processes of its own: several devices, several
                     processes, notebooks, benchmarks, a run killed by SIGKILL.
`-m "not slow"` is the edit loop's subset. Helpers live in tests/helpers; no test
module imports another.

On the CPU backend a unit test's time is the programs it compiles, each a fixed ~25 ms
and more for its operations (an eager operation outside `jit` is a program of its own): a
test computes what it checks in one jitted function, keys and seeds inside it or as its
arguments, and compares the fetched results with numpy. The summary counts the programs."""

import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Compiling, not running, is most of a tiny test's time on the CPU backend (XLA's backend
# compile was 76% of the CPU time of tests/unit/test_ais.py and test_iaf_posterior.py). Five
# settings, inherited by the scripts, notebooks and checks the tests start in other
# processes:
# - XLA's CPU backend at LLVM optimization level 0 compiles 2-2.5x faster (matmuls still
#   call the same library kernels; results agree with the default's up to float32
#   rounding, e.g. 2e-5 of an IWAE gradient's largest entry);
# - XLA:CPU's loop emitters instead of its MLIR fusion emitters compile 2.5x faster again
#   (backend compile 77.7 s -> 27.8 s over test_ais, test_importance_weighted and
#   test_gated_nets; the same tests pass);
# - one LLVM module per program instead of parallel codegen's split (a program of ten
#   layers compiled in 43 ms instead of 72 on one core; the unit tier's backend compile
#   96 s -> 81 s);
# - XLA:CPU's FAST_COMPILE preset, and no HLO verifier after each pass (a check of XLA's
#   own passes, not of the program): the unit tier's backend compile 62 s -> 53 s, its
#   time 141 s -> 127 s (the same 453 programs, the same tests pass);
# - one compilation cache for the session lets a process reuse what another compiled:
#   the programs that took over 0.1 s to compile (writing each of the many small programs
#   cost more than it saved: three unit test files 35-37 s with every program cached,
#   31.5-32 s at this threshold or uncached).
# VBAYES_TEST_XLA_DEFAULTS=1 tests at XLA's defaults, without the cache.
_FAST_COMPILE_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false",
                       "--xla_cpu_parallel_codegen_split_count=1",
                       "--xla_cpu_opt_preset=FAST_COMPILE", "--xla_disable_hlo_passes=hlo-verifier")
if os.environ.get("VBAYES_TEST_XLA_DEFAULTS") != "1":
  for _flag in _FAST_COMPILE_FLAGS:
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
      os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), _flag]).strip()
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="vbayes_test_jax_cache_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

import pytest  # pylint: disable=g-import-not-at-top

from tests.helpers import fake_data, linear_gaussian  # pylint: disable=g-import-not-at-top
from tests.helpers.paths import TESTS  # pylint: disable=g-import-not-at-top

TIERS = ("unit", "integration", "system")
_CPU_BY_FILE = {}  # test file: CPU seconds of this process in its tests (set-up included)
_JAX_SECONDS = {}  # JAX's compile-time events in this process: event name: seconds
_PROGRAMS_COMPILED = [0]  # XLA compilations in this process (an eager operation is one)


def _record_jax_duration(event: str, seconds: float, **kwargs):
  del kwargs
  if event.startswith("/jax/core/compile/"):
    name = event.removeprefix("/jax/core/compile/")
    _JAX_SECONDS[name] = _JAX_SECONDS.get(name, 0.0) + seconds
    _PROGRAMS_COMPILED[0] += name == "backend_compile_duration"


def pytest_configure(config):
  for tier in TIERS:
    config.addinivalue_line("markers", f"{tier}: a test under tests/{tier}/")
  import jax.monitoring  # pylint: disable=import-outside-toplevel
  jax.monitoring.register_event_duration_secs_listener(_record_jax_duration)


def pytest_collection_modifyitems(items):
  """Marks each test with its tier, the folder it is in."""
  for item in items:
    parts = Path(item.fspath).resolve().relative_to(TESTS).parts
    if parts[0] in TIERS:
      item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # pylint: disable=unused-argument
  start = time.process_time()
  yield
  file = item.nodeid.split("::")[0]
  _CPU_BY_FILE[file] = _CPU_BY_FILE.get(file, 0.0) + time.process_time() - start


def pytest_terminal_summary(terminalreporter):
  """Where the suite's CPU time goes, which --durations does not show: this process's
  CPU seconds per test file, XLA's share of them, and the CPU seconds of the processes
  the tests started."""
  write = terminalreporter.write_line
  if _CPU_BY_FILE:
    terminalreporter.write_sep("-", "CPU s of this process per test file (top 15)")
    for file, cpu in sorted(_CPU_BY_FILE.items(), key=lambda item: -item[1])[:15]:
      write(f"{cpu:7.1f}  {file}")
    if _JAX_SECONDS:
      write(f"JAX in this process: {_PROGRAMS_COMPILED[0]} programs compiled; s: " + ", ".join(
          f"{name} {seconds:.1f}" for name, seconds in sorted(_JAX_SECONDS.items())))
    import resource  # pylint: disable=import-outside-toplevel
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))
    write(f"CPU s: this process {own.ru_utime + own.ru_stime:.1f}, the processes it "
          f"started {children.ru_utime + children.ru_stime:.1f}")


@pytest.fixture
def lg_model():
  return linear_gaussian.make()


@pytest.fixture(scope="session")
def tiny_tfds(tmp_path_factory):
  """A tfds data dir whose caches hold tiny generated binarized_mnist and mnist
  (`fake_data.write_tiny_tfds`)."""
  return fake_data.write_tiny_tfds(tmp_path_factory.mktemp("tfds"))
