"""Shared fixtures. Tests run on the JAX CPU backend and never touch the network."""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Compiling, not running, is most of a tiny test's time on the CPU backend (XLA's backend
# compile was 76% of the CPU time of tests/test_ais.py and test_iaf_posterior.py). Three
# settings, inherited by the scripts, notebooks and checks the tests start in other
# processes:
# - XLA's CPU backend at LLVM optimization level 0 compiles 2-2.5x faster (matmuls still
#   call the same library kernels; results agree with the default's up to float32
#   rounding, e.g. 2e-5 of an IWAE gradient's largest entry);
# - XLA:CPU's loop emitters instead of its MLIR fusion emitters compile 2.5x faster again
#   (backend compile 77.7 s -> 27.8 s over test_ais, test_importance_weighted and
#   test_gated_nets; the same tests pass);
# - one compilation cache for the session lets a process reuse what another compiled.
# VBAYES_TEST_XLA_DEFAULTS=1 tests at XLA's defaults, without the cache.
_FAST_COMPILE_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
if os.environ.get("VBAYES_TEST_XLA_DEFAULTS") != "1":
  for _flag in _FAST_COMPILE_FLAGS:
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
      os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), _flag]).strip()
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="vbayes_test_jax_cache_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

from tests import linear_gaussian  # pylint: disable=g-import-not-at-top
from vbayes import data as data_lib  # pylint: disable=g-import-not-at-top


SHARED_DATA = Path(os.environ.get(
    data_lib.MANUAL_DIR_ENV, Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
TESTS = Path(__file__).resolve().parent
NOTEBOOKS = tuple(p.stem for p in sorted((TESTS.parent / "colab").glob("*.ipynb")))
# The objectives tests/sharded_check.py trains on 8 CPU devices.
SHARDED_OBJECTIVES = ("elbo", "iwae", "prior_is", "avb", "iwae_vamp_prior", "elbo_conv_net",
                      "iwae_two_layers", "iwae_iaf")
# Set-up that runs in a process of its own from collection on, beside the other tests:
# {fixture name: {"process", "out", "log"}}.
_BACKGROUND = {}


def _start_in_background(fixture: str, script: str, out: Path, *args: str,
                         env: dict | None = None):
  """Runs tests/<script> OUT ARGS... in the background (with `env` added to the
  environment); removed (and stopped) at exit."""
  atexit.register(shutil.rmtree, out, ignore_errors=True)
  log_path = out.parent / f"{out.name}.log"
  atexit.register(log_path.unlink, missing_ok=True)
  log = open(log_path, "w+")  # pylint: disable=consider-using-with
  env = {**os.environ, "PYTHONPATH": str(TESTS.parent), **(env or {})}
  env.pop(data_lib.MANUAL_DIR_ENV, None)
  process = subprocess.Popen(  # pylint: disable=consider-using-with
      [sys.executable, str(TESTS / script), str(out), *args], stdout=log,
      stderr=subprocess.STDOUT, env=env)
  atexit.register(process.kill)  # a session that ends early does not leave it running
  _BACKGROUND[fixture] = {"process": process, "out": out, "log": log, "start": time.time()}


def _wait_for(fixture: str) -> Path:
  job = _BACKGROUND[fixture]
  code = _reap(job, timeout=1800)
  job["log"].seek(0)
  assert code == 0, job["log"].read()[-3000:]
  return job["out"]


def _reap(job: dict, timeout: float) -> int:
  """Waits for a background job and records its wall and CPU seconds (its own and its
  children's, from wait4) in job["wall_s"] and job["cpu_s"]; returns its exit code."""
  process = job["process"]
  deadline = time.time() + timeout
  while process.returncode is None:
    pid, status, usage = os.wait4(process.pid, os.WNOHANG)
    if pid:
      process.returncode = os.waitstatus_to_exitcode(status)
      job["wall_s"] = time.time() - job["start"]
      job["cpu_s"] = usage.ru_utime + usage.ru_stime
    elif time.time() > deadline:
      raise subprocess.TimeoutExpired(process.args, timeout)
    else:
      time.sleep(0.1)
  return process.returncode


_CPU_BY_FILE = {}  # test file: CPU seconds of this process in its tests (set-up included)
_JAX_SECONDS = {}  # JAX's compile-time events in this process: event name: seconds


def _record_jax_duration(event: str, seconds: float, **kwargs):
  del kwargs
  if event.startswith("/jax/core/compile/"):
    name = event.removeprefix("/jax/core/compile/")
    _JAX_SECONDS[name] = _JAX_SECONDS.get(name, 0.0) + seconds


def pytest_configure(config):
  del config
  import jax.monitoring  # pylint: disable=import-outside-toplevel
  jax.monitoring.register_event_duration_secs_listener(_record_jax_duration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # pylint: disable=unused-argument
  start = time.process_time()
  yield
  file = item.nodeid.split("::")[0]
  _CPU_BY_FILE[file] = _CPU_BY_FILE.get(file, 0.0) + time.process_time() - start


def pytest_terminal_summary(terminalreporter):
  """Where the suite's CPU time goes, which --durations (wall time, shared with the
  background set-up) does not show: each background set-up's wall and CPU seconds, this
  process's CPU seconds per test file, and the total of this process and its children."""
  write = terminalreporter.write_line
  done = {name: job for name, job in _BACKGROUND.items() if "cpu_s" in job}
  if done:
    terminalreporter.write_sep("-", "background set-up: wall s, CPU s")
    for name, job in sorted(done.items(), key=lambda item: -item[1]["cpu_s"]):
      write(f"{job['wall_s']:7.1f} {job['cpu_s']:7.1f}  {name}")
  if _CPU_BY_FILE:
    terminalreporter.write_sep("-", "CPU s of this process per test file (top 15)")
    for file, cpu in sorted(_CPU_BY_FILE.items(), key=lambda item: -item[1])[:15]:
      write(f"{cpu:7.1f}  {file}")
    import resource  # pylint: disable=import-outside-toplevel
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))
    if _JAX_SECONDS:
      write("JAX in this process, s: " + ", ".join(
          f"{name} {seconds:.1f}" for name, seconds in sorted(_JAX_SECONDS.items())))
    write(f"CPU s: this process {own.ru_utime + own.ru_stime:.1f}, the processes it "
          f"waited for {children.ru_utime + children.ru_stime:.1f}")


# The background set-ups, in about the order they finish. Tests that wait for one run
# after every test that waits for none, so that this process works beside them instead
# of waiting while they run.
_BACKGROUND_ORDER = ("sharded_results", "bench_smokes", "tfds_prepared_from_original_files",
                     "multiprocess_runs", "executed_notebooks", "cli_runs")


def pytest_collection_modifyitems(items):
  """Orders the tests (stably) by the last background set-up they wait for: none first."""
  def waits_for(item):
    names = getattr(item, "fixturenames", ())
    return max((i + 1 for i, name in enumerate(_BACKGROUND_ORDER) if name in names), default=0)
  items.sort(key=waits_for)


def pytest_collection_finish(session):
  """Starts the background set-up that the collected tests use: tfds' preparation of
  both datasets from the original files (tests/prepare_tfds.py, when they are there),
  the notebooks at their tiny size (tests/run_notebooks.py), the command line's
  successful runs (tests/cli_cases.py), the benchmarks' smoke runs (tests/bench_smokes.py),
  the 2-process runs (tests/multiprocess_check.py) and the 8-device training steps
  (tests/sharded_check.py)."""
  used = set().union(*(getattr(item, "fixturenames", ()) for item in session.items))
  if "tfds_prepared_from_original_files" in used and (SHARED_DATA / "binarized_mnist").is_dir():
    _start_in_background("tfds_prepared_from_original_files", "prepare_tfds.py",
                         Path(tempfile.mkdtemp(prefix="vbayes_test_tfds_")), str(SHARED_DATA))
  if "executed_notebooks" in used:
    data_dir = Path(tempfile.mkdtemp(prefix="vbayes_test_notebook_tfds_"))
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    write_tiny_tfds(data_dir)
    _start_in_background("executed_notebooks", "run_notebooks.py",
                         Path(tempfile.mkdtemp(prefix="vbayes_test_notebooks_")), str(data_dir),
                         *NOTEBOOKS)
  if "cli_runs" in used:  # tests/test_cli.py's successful runs of experiments.train
    from tests import test_cli  # pylint: disable=import-outside-toplevel
    root = Path(tempfile.mkdtemp(prefix="vbayes_test_cli_runs_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    _start_in_background("cli_runs", "cli_cases.py", root / "results",
                         str(test_cli.write_run_cases(root)),
                         env={"JAX_PLATFORMS": "cpu"})
    _BACKGROUND["cli_runs"]["root"] = root
  if "bench_smokes" in used:  # tests/test_bench.py's benchmark scripts at their smoke size
    _start_in_background("bench_smokes", "bench_smokes.py",
                         Path(tempfile.mkdtemp(prefix="vbayes_test_bench_")),
                         env={"JAX_PLATFORMS": "cpu"})
  if "multiprocess_runs" in used:  # tests/test_multiprocess.py's 2-process runs
    _start_in_background("multiprocess_runs", "multiprocess_check.py",
                         Path(tempfile.mkdtemp(prefix="vbayes_test_multiprocess_")))
  if "sharded_results" in used:  # the device count is fixed when JAX starts: its own process
    _start_in_background("sharded_results", "sharded_check.py",
                         Path(tempfile.mkdtemp(prefix="vbayes_test_sharded_")),
                         *SHARDED_OBJECTIVES,
                         env={"JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "8"})


@pytest.fixture(scope="session")
def tfds_prepared_from_original_files() -> Path:
  """A tfds data dir in which tests/prepare_tfds.py prepared binarized_mnist and mnist
  from ../shared/data, offline, started in the background when the suite was collected."""
  if "tfds_prepared_from_original_files" not in _BACKGROUND:
    pytest.skip(f"no offline MNIST files at {SHARED_DATA}")
  return _wait_for("tfds_prepared_from_original_files")


@pytest.fixture(scope="session")
def bench_smokes() -> Path:
  """A folder with each benchmark smoke run's JSON line (tests/bench_smokes.py), started
  in the background at collection."""
  return _wait_for("bench_smokes")


@pytest.fixture(scope="session")
def executed_notebooks() -> Path:
  """A folder with NAME.ipynb, each colab/ notebook executed at its tiny size by
  tests/run_notebooks.py (or NAME.error), started in the background at collection."""
  return _wait_for("executed_notebooks")


@pytest.fixture
def lg_model():
  return linear_gaussian.make()


def write_tiny_tfds(root: Path) -> Path:
  """tfds caches as the figures need them: binarized_mnist (no labels) whose test
  images are Bernoulli draws of mnist's labelled grey test images, in another order."""
  rng = np.random.default_rng(0)
  grey = (rng.random((150, 784)) ** 4 * 255).astype(np.uint8)
  labels = np.arange(150, dtype=np.int32) % 10
  data_lib.save_arrays(data_lib.cache_path("mnist", root),
                       {"train": grey[:10], "test": grey, "test_labels": labels})
  order = rng.permutation(150)
  binary = lambda g: (rng.random(g.shape) < g / 255.0).astype(np.uint8)
  data_lib.save_arrays(data_lib.cache_path("binarized_mnist", root), {
      "train": binary(np.resize(grey, (200, 784))), "validation": binary(grey[:20]),
      "test": binary(grey[order])})
  return root


@pytest.fixture(scope="session")
def tiny_tfds(tmp_path_factory):
  return write_tiny_tfds(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def cli_runs() -> tuple[Path, list[dict]]:
  """(root, results): tests/test_cli.py's RUNS through experiments.train's command line
  (tests/cli_cases.py), each in root/<name>, started in the background at collection."""
  out = _wait_for("cli_runs")
  lines = (out / "results.jsonl").read_text().splitlines()
  return _BACKGROUND["cli_runs"]["root"], [json.loads(line) for line in lines]


@pytest.fixture(scope="session")
def multiprocess_runs() -> tuple[Path, dict]:
  """(out, results) of tests/multiprocess_check.py: its workdirs and each command's exit
  status and output, from the process started when the suite was collected."""
  out = _wait_for("multiprocess_runs")
  return out, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="session")
def sharded_results() -> dict:
  """{objective: what tests/sharded_check.py measured for it on 8 CPU devices}, from the
  process started when the suite was collected."""
  out = _wait_for("sharded_results")
  lines = (out / "results.jsonl").read_text().splitlines()
  return {r["objective"]: r for r in map(json.loads, lines)}
