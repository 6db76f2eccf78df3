"""experiments.train end to end, as a user runs it: tiny generated data, bad inputs,
and a run killed with SIGKILL that resumes to the same parameters."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from tests import test_readme
from vbayes import config as config_lib, data as data_lib
from vbayes.training import checkpoint
from vbayes.training import final_evaluation
from vbayes.training import loop as training_loop
from vbayes.training import step as training_step
from vbayes.training import workdir as workdir_lib

REPO = Path(__file__).resolve().parent.parent
TINY = ["--hidden_sizes=32", "--eval_k=10", "--quadrature_points=64", "--steps_per_call=5"]


def cli(*args, data_dir=None, wait=True):
  """experiments.train in a process of its own. Without the session's compilation cache:
  on some CPUs XLA rejects every cached executable with a log line on stderr, and these
  runs' stderr is checked line by line."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
  env.pop(data_lib.MANUAL_DIR_ENV, None)
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  if data_dir is not None:
    env[data_lib.DATA_DIR_ENV] = str(data_dir)
  cmd = [sys.executable, "-m", "experiments.train", *map(str, args)]
  if not wait:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                        check=False)


def snapshot(folder: Path) -> dict:
  """Every file's bytes, but the lock file's (which holds the pid of the last run)."""
  return {p: p.read_bytes() for p in sorted(folder.rglob("*"))
          if p.is_file() and p.name != ".lock"}


def _fake_mnist(folder: Path) -> Path:
  """A tfds data dir whose binarized_mnist cache holds tiny random binary images."""
  rng = np.random.default_rng(0)
  arrays = {split: (rng.random((n, 784)) < 0.13).astype(np.uint8)
            for split, n in (("train", 400), ("validation", 50), ("test", 30))}
  data_lib.save_arrays(data_lib.cache_path("binarized_mnist", folder), arrays)
  return folder


def _grey_mnist(folder: Path) -> Path:
  """A tfds data dir whose mnist cache holds tiny random grey images with labels."""
  rng = np.random.default_rng(1)
  arrays = {split: rng.integers(0, 256, size=(n, 784)).astype(np.uint8)
            for split, n in (("train", 200), ("test", 20))}
  arrays["test_labels"] = rng.integers(0, 10, size=20).astype(np.int32)
  data_lib.save_arrays(data_lib.cache_path("mnist", folder), arrays)
  return folder


FOUR_FRAMES = ["--dataset=4frames", "--batch_size=20", "--quadrature_points=64"]
AVB = [*FOUR_FRAMES, "--objective=avb", "--epochs=4", "--hidden_sizes=16",
       "--adversary_hidden_sizes=16", "--avb_samples=4", "--eval_k=100"]
IW = [*FOUR_FRAMES, "--epochs=2", "--hidden_sizes=16", "--eval_k=50"]
# Big enough nets that a kill lands between the second epoch's checkpoint and the last.
KILLED = ["--epochs=12", "--batch_size=20", "--hidden_sizes=256,256", "--eval_k=2",
          "--quadrature_points=64", "--steps_per_call=5"]
GREY = ["--dataset=mnist", "--epochs=1", "--batch_size=20", "--latent_dim=3", *TINY]
RUNS = {  # name: (data, arguments) of the runs that must succeed
    "tiny_mnist": ("fake", ["--epochs=2", "--batch_size=20", *TINY]),
    "conv": ("fake", ["--epochs=1", "--batch_size=20", "--network=conv", "--conv_channels=4,8",
                      *TINY]),
    "grey_dynamic": ("grey", [*GREY, "--binarization=dynamic"]),
    "grey_none": ("grey", [*GREY, "--binarization=none"]),
    "continuous_bernoulli": ("grey", [*GREY, "--binarization=none",
                                      "--decoder=continuous_bernoulli"]),
    "mixture_prior": (None, [*IW, "--objective=iwae", "--k=4", "--prior=mixture",
                             "--num_components=3"]),
    "four_frames": (None, [*FOUR_FRAMES, "--epochs=6", "--hidden_sizes=32", "--eval_k=200",
                           "--learning_rate=0.01", "--steps_per_call=25",
                           "--quadrature_points=128"]),
    "iwae_dreg": (None, [*IW, "--objective=iwae", "--k=5", "--estimator=dreg"]),
    "iwae_stl": (None, [*IW, "--objective=iwae", "--k=3", "--estimator=stl"]),
    "prior_is": (None, [*IW, "--set=objective=prior_is", "--set=objective.k=16"]),
    "from_config": (None, ["--config=vae_50d", *FOUR_FRAMES, "--epochs=2", "--hidden_sizes=16",
                           "--eval_k=20", "--set=model.activation=tanh"]),
    "renyi": (None, [*IW, "--objective=renyi", "--k=4", "--alpha=0.25"]),
    "vamp_prior": (None, [*IW, "--objective=iwae", "--k=4", "--prior=vamp",
                          "--num_pseudo_inputs=8"]),
    "two_layers": (None, [*IW, "--objective=iwae", "--k=4", "--estimator=stl", "--latent_dim=1",
                          "--latent_dim_2=1", "--hidden_sizes_2=8"]),
    "iaf": (None, [*IW, "--objective=iwae", "--k=4", "--flow=iaf", "--flow_hidden_sizes=8"]),
    "vamp_prior_elbo": (None, [*IW, "--prior=vamp", "--num_pseudo_inputs=8",
                               "--kl_estimator=mc"]),
    "avb": (None, AVB),
    "avb_ac": (None, [*AVB, "--adaptive_contrast", "--kl_warmup_steps=50", "--grad_clip=10"]),
    "readme_train": ("fake", test_readme.readme_train_flags()),  # tests/test_readme.py's
    "uninterrupted": ("fake", KILLED),  # what the run killed by SIGKILL must resume to
}


def write_run_cases(root: Path) -> Path:
  """The argument lists of RUNS, with their data written under `root`, one JSON list per
  line of root/cases.jsonl; conftest runs them through tests/cli_cases.py in the
  background from collection on."""
  data = {"fake": _fake_mnist(root / "fake"), "grey": _grey_mnist(root / "grey"),
          None: root / "unused"}
  cases = [[f"--workdir={root / name}", f"--data_dir={data[source]}", *args]
           for name, (source, args) in RUNS.items()]
  path = root / "cases.jsonl"
  path.write_text("".join(json.dumps(c) + "\n" for c in cases))
  return path


@pytest.fixture(scope="module")
def runs(cli_runs) -> dict[str, tuple[dict, Path]]:
  """Every run of RUNS through experiments.train's command line, all in one process
  (tests/cli_cases.py, started at collection): {name: (its result, its workdir)}."""
  root, results = cli_runs
  assert len(results) == len(RUNS), (f"{len(results)} of {len(RUNS)} runs reported",
                                     results[-1:] if results else None)
  return {name: (result, root / name) for name, result in zip(RUNS, results)}


def succeeded(result: dict):
  assert result["code"] == 0, (result["argv"], result["stderr"][-3000:])


@pytest.mark.slow
def test_end_to_end_on_tiny_mnist_like_data(runs):
  result, workdir = runs["tiny_mnist"]
  succeeded(result)
  assert "steps/s" in result["stdout"] and "ETA" in result["stdout"]
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [r for r in records if "train_loss" in r]
  assert [r["step"] for r in train] == list(range(5, 41, 5))
  assert all({"epoch", "train_loss", "steps_per_s", "wall_time"} <= set(r) for r in train)
  final = records[-1]
  assert final["eval_k"] == 10 and final["num_test_images"] == 30
  # The k-sample bound is at least the ELBO (Burda et al. 2016): NLL <= -ELBO.
  assert 0 < final["test_nll"] < -final["test_elbo"] + 0.5
  assert abs(final["test_nll"] - final["test_nll_quadrature"]) < 5
  assert 0 <= final["active_units"] <= 2
  config = json.loads((workdir / "config.json").read_text())
  assert config["model"]["latent_dim"] == 2 and config["data"]["dataset"] == "binarized_mnist"
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert (workdir / "checkpoints" / "40").is_dir()
  for name, min_size in (("reconstructions", 400), ("training_curves", 400),
                         ("latent_grid_walk", 600)):
    with Image.open(workdir / "figures" / f"{name}.png") as im:
      assert min(im.size) >= min_size * 0.2 and max(im.size) >= min_size, (name, im.size)


@pytest.mark.slow
@pytest.mark.parametrize("binarization", ["dynamic", "none"])
def test_grey_mnist_with_dynamic_binarization_or_gaussian_decoder(runs, binarization):
  result, workdir = runs[f"grey_{binarization}"]
  succeeded(result)
  config = json.loads((workdir / "config.json").read_text())
  assert config["model"]["likelihood"]["name"] == ("gaussian" if binarization == "none"
                                                   else "bernoulli")
  final = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert np.isfinite(final["test_nll"]) and "test_nll_quadrature" not in final


@pytest.mark.slow
def test_the_parts_added_as_one_file_each_train_and_evaluate_from_the_command_line(runs):
  """--decoder=continuous_bernoulli on grey pixels and --prior=mixture: config.json holds
  the part and its settings, the test NLL is finite, and the mixture's parameters were
  trained (its weights moved from equal)."""
  for name, family, want in (("continuous_bernoulli", "likelihood", {"name":
                                                                     "continuous_bernoulli"}),
                             ("mixture_prior", "prior", {"name": "mixture", "num_components": 3,
                                                         "component_init_sd": 1.0})):
    result, workdir = runs[name]
    succeeded(result)
    config = json.loads((workdir / "config.json").read_text())
    assert config["model"][family] == want
    final = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(final["test_nll"]), name
  config = config_lib.TrainConfig.from_dict(
      json.loads((runs["mixture_prior"][1] / "config.json").read_text()))
  logits = training_loop.restore_params(runs["mixture_prior"][1], config)["prior"]["logits"]
  assert float(np.ptp(np.asarray(logits))) > 0
  final = json.loads((runs["mixture_prior"][1] / "metrics.jsonl").read_text().splitlines()[-1])
  assert np.isfinite(final["test_nll_quadrature"])  # a 2-D latent: exact quadrature too


@pytest.mark.slow
def test_four_frames_learns(runs):
  result, workdir = runs["four_frames"]
  succeeded(result)
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  losses = [r["train_loss"] for r in records if "train_loss" in r]
  assert losses[-1] < losses[0]
  # 4frames is uniform over 4 images: no model beats log 4 nats.
  assert records[-1]["test_nll_quadrature"] > np.log(4) - 1e-3


@pytest.mark.slow
def test_the_elbo_trains_a_vamp_prior_with_the_monte_carlo_kl(runs):
  """The command the refusal of the analytic KL names: --prior=vamp --kl_estimator=mc."""
  result, workdir = runs["vamp_prior_elbo"]
  succeeded(result)
  config = json.loads((workdir / "config.json").read_text())
  assert config["objective"] == {"name": "elbo", "kl_estimator": "mc", "kl_warmup_steps": 0}
  assert config["model"]["prior"]["name"] == "vamp"
  final = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert final["test_nll_quadrature"] > np.log(4) - 1e-3


@pytest.mark.slow
def test_a_run_from_a_study_config_with_flags_and_overrides(runs):
  """--config=vae_50d: its latent_dim; the flags given and --set override their fields."""
  result, workdir = runs["from_config"]
  succeeded(result)
  config = config_lib.TrainConfig.from_dict(json.loads((workdir / "config.json").read_text()))
  assert config.model.latent_dim == 50 and config.model.network.activation == "tanh"
  assert config.model.data_dim == 4 and config.model.network.hidden_sizes == (16,)
  assert config.epochs == 2 and config.eval_k == 20
  assert json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 100


@pytest.mark.slow
@pytest.mark.parametrize("name", ["iwae_dreg", "iwae_stl", "prior_is", "renyi", "vamp_prior",
                                  "two_layers", "iaf"])
def test_importance_weighted_objectives_run_end_to_end(runs, name):
  result, workdir = runs[name]
  succeeded(result)
  config = json.loads((workdir / "config.json").read_text())
  if name == "prior_is":  # set by --set: the objective's defaults, then its k; no encoder
    assert config["objective"] == {"name": "prior_is", "k": 16}
    assert config["model"]["proposal"]["name"] == "prior"
  else:
    assert f"--objective={config['objective']['name']}" in RUNS[name][1]
    assert f"--k={config['objective']['k']}" in RUNS[name][1]
  if name == "renyi":  # its setting, through the flag the Config's field defines
    assert config["objective"]["alpha"] == 0.25  # not the default, 0.5
  if name == "vamp_prior":  # its pseudo-inputs are trained and checkpointed with the rest
    assert config["model"]["prior"] == {"name": "vamp", "num_pseudo_inputs": 8,
                                        "pseudo_input_init": [0.5, 0.1],
                                        "pseudo_input_limits": []}
    params = training_loop.restore_params(workdir, config_lib.TrainConfig.from_dict(config))
    assert params["prior"]["pseudo_inputs"].shape == (8, 4)
  final = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  if name == "two_layers":  # z = [z1, z2], one unit each: quadrature over both layers
    assert len(final["active_units_per_layer"]) == 2
  assert final["test_nll_quadrature"] > np.log(4) - 1e-3
  assert final["proposal"] == ("prior" if name == "prior_is" else "encoder")
  assert (workdir / "figures" / "latent_grid_walk.png").exists()


BAD_FLAGS = [
    ("--dataset=cifar", "flag --dataset=cifar: value should be one of "
     "<binarized_mnist|mnist|4frames>"),
    ("--objective=vi", "value should be one of <elbo|iwae|renyi|prior_is|avb>"),
    ("--activation=sin", "activation must be one of ('relu', 'tanh', 'softplus', 'elu', "
     "'gelu'), got 'sin'"),
    ("--batch_size=-5", "batch_size must be positive"),
    ("--latent_dim=0", "latent_dim must be positive"),
    ("--binarization=dynamic", "binarization 'dynamic' does not apply"),
    ("--k=5", "--k applies to the iwae, renyi and prior_is objectives only, not elbo"),
    ("--objective=iwae --alpha=0.5", "--alpha applies to the renyi objective only, not iwae"),
    ("--estimator=dreg", "--estimator applies to the iwae objective only, not elbo"),
    ("--objective=iwae --avb_samples=4", "--avb_samples applies to the avb objective only, not iwae"),
    ("--objective=iwae --k=0", "k must be positive"),
    ("--objective=iwae --kl_warmup_steps=10", "--kl_warmup_steps applies to the elbo and avb "
     "objectives only, not iwae"),
    ("--objective=avb --adaptive_contrast --avb_moment_samples=1",
     "adaptive contrast needs at least 2"),
    ("--objective=avb --adaptive_contrast --avb_samples=1 --avb_moment_samples=0",
     "adaptive contrast needs at least 2"),
    ("--objective=avb --adversary_steps=0", "avb adversary_steps must be positive"),
    ("--learning_rate=inf", "learning_rate must be positive and finite, got inf"),
    ("--seed=4294967296", "seed must be in [0, 2^32), got 4294967296"),
    ("--seed=-1", "seed must be in [0, 2^32), got -1"),
    ("--quadrature_points=1", "quadrature_points must be at least 64 per axis, got 1"),
    ("--hidden_sizes=500,x", "model.hidden_sizes='500,x': expected integers"),
    ("--config=vae_3d", "unknown config 'vae_3d': choose one of"),
    ("--config=/no/such/config.py", "--config=/no/such/config.py: no such file"),
    ("--config=four_frames", "four_frames is a study of several runs (vae, avb, avb_ac): "
     "run it with its own script"),
    ("--set=epochs", "an override is path=value"),
    ("--set=model.latnt_dim=3", "no config field 'model.latnt_dim': no part of this model has "
     "the setting 'latnt_dim'"),
    ("--set=model.prior=flat", "unknown prior 'flat': choose one of"),
    ("--num_components=3", "no config field 'model.num_components': no part of this model "
     "has the setting 'num_components' (the mixture prior has it"),
    ("--dataset=4frames --latent_dim=1000000000", "training needs at least"),
    ("--dataset=4frames --quadrature_points=100000000", "quadrature_points=100000000: the "
     "100000000x100000000 quadrature grid needs at least"),
    ("--config=vae_2d --set=objective.k=3", "no config field 'objective.k': objective elbo's"),
    ("--prior=vamp", "KL(q(z|x) || p(z)) has no closed form for the vamp prior with the "
     "gaussian proposal: train the ELBO with the Monte Carlo KL, kl_estimator mc "
     "(--kl_estimator=mc)"),
    ("--latent_dim_2=3 --flow=iaf", "a flow posterior is built here for one stochastic layer"),
    ("--set=objective=gan", "unknown objective 'gan'"),
    ("--objective=iwae --set=objective=elbo --k=3", "--k applies to the iwae, renyi and "
     "prior_is objectives only, not elbo"),
    ("--set=objective=iwae --set=objective.k=0", "k must be positive"),
]


def run_cases(cases: list[list[str]], module: str = "train",
              environment: dict | None = None) -> list[dict]:
  """Each argument list through experiments.<module>'s command line, all in one process
  (tests/cli_cases.py, with `environment` added to its environment), without the
  session's compilation cache (see `cli`). What the process itself writes to stderr
  outside the cases (at exit, say) must be no traceback and no closed event loop's
  complaint."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO), **(environment or {})}
  env.pop(data_lib.MANUAL_DIR_ENV, None)
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  out = subprocess.run([sys.executable, str(REPO / "tests" / "cli_cases.py"), module],
                       input="".join(json.dumps(c) + "\n" for c in cases), cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=900, check=False)
  results = [json.loads(line) for line in out.stdout.splitlines()]
  assert out.returncode == 0 and len(results) == len(cases), (
      f"{len(results)} of {len(cases)} cases reported; the next was {cases[len(results)]}"
      if len(results) < len(cases) else "", out.stderr[-3000:])
  assert "Traceback" not in out.stderr and "Event loop is closed" not in out.stderr, (
      out.stderr[-3000:])
  return results


def assert_one_error_line(stderr: str, message: str):
  lines = [line for line in stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), stderr
  assert message in lines[0], (message, lines[0])
  assert len(lines[0]) < 400


def test_bad_input_gives_one_error_line_and_writes_nothing(tmp_path):
  (tmp_path / "a_file").write_text("x")
  workdir_cases = [
      ([f"--workdir={tmp_path / 'a_file'}"], "cannot use workdir", tmp_path / "a_file"),
      ([f"--workdir={tmp_path / 'a_file' / 'run'}"], "or a folder above it is a file", None),
  ]
  cases = [[f"--workdir={tmp_path / f'run{i}'}", *flag.split()]
           for i, (flag, _) in enumerate(BAD_FLAGS)] + [c for c, _, _ in workdir_cases]
  results = run_cases(cases)
  messages = [m for _, m in BAD_FLAGS] + [m for _, m, _ in workdir_cases]
  for i, (result, message) in enumerate(zip(results, messages)):
    assert result["code"] == 1, result
    assert_one_error_line(result["stderr"], message)
    if i < len(BAD_FLAGS):
      run = tmp_path / f"run{i}"
      assert not run.exists() or not any(run.iterdir())
  assert (tmp_path / "a_file").read_text() == "x"


def test_process_settings_that_cannot_work_are_one_error_line(tmp_path):
  """A process id outside 0 .. N-1 (it was accepted with one process), and a
  JAX_PROCESS_ID that is no integer (a ValueError traceback at import before): one
  error line each, before anything is written."""
  for module in ("train", "evaluate"):
    cases = [[f"--workdir={tmp_path / module}", "--num_processes=1", "--process_id=3"]]
    result, = run_cases(cases, module=module)
    assert result["code"] == 1, result
    assert_one_error_line(result["stderr"], "--process_id=3 (or $JAX_PROCESS_ID) is outside")
    result, = run_cases([[f"--workdir={tmp_path / module}"]], module=module,
                        environment={"JAX_PROCESS_ID": "abc"})
    assert result["code"] == 1, result
    assert_one_error_line(result["stderr"], "JAX_PROCESS_ID='abc' is not a process index")
    assert not (tmp_path / module).exists()


def test_a_config_file_that_fails_is_one_error_line_naming_it(tmp_path):
  """A --config .py with a syntax error, one whose get_config() returns a dict or None,
  and one whose get_config() raises: one error line naming the file (tracebacks before),
  nothing written."""
  files = {"syntax.py": "def get_config(:\n", "a_dict.py": "def get_config():\n  return {}\n",
           "none.py": "def get_config():\n  pass\n",
           "raises.py": "def get_config():\n  return 1 / 0\n"}
  for name, text in files.items():
    (tmp_path / name).write_text(text)
  results = run_cases([[f"--workdir={tmp_path / 'run'}", f"--config={tmp_path / name}"]
                       for name in files])
  for (name, _), result, message in zip(files.items(), results, (
      "cannot be loaded (line 1): SyntaxError", "returned dict", "returned NoneType",
      "get_config() failed (ZeroDivisionError")):
    assert result["code"] == 1, result
    assert_one_error_line(result["stderr"], message)
    assert name in result["stderr"]
  assert not (tmp_path / "run").exists()


def test_a_read_only_workdir_gives_one_error_line(tmp_path):
  """A folder without write permission; as root (who may write anywhere), a folder on a
  file system mounted read-only."""
  root = tmp_path / "ro"
  root.mkdir()
  mounted = False
  if os.geteuid() == 0:
    mount = lambda *opts: subprocess.run(["mount", *opts], capture_output=True, check=False)
    if mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root)).returncode:
      pytest.skip("cannot mount a file system read-only here")
    mounted = True
    (root / "run").mkdir()
    assert mount("-o", "remount,ro", str(root)).returncode == 0
  else:
    (root / "run").mkdir()
    (root / "run").chmod(0o555)
  try:
    result, = run_cases([[f"--workdir={root / 'run'}"]])
    assert result["code"] == 1, result
    assert_one_error_line(result["stderr"], f"cannot use workdir {root / 'run'}: it is not "
                          "writable")
    assert list((root / "run").iterdir()) == []
  finally:
    if mounted:
      subprocess.run(["umount", str(root)], check=False)


@pytest.fixture(scope="module")
def refused_runs(runs, tmp_path_factory) -> dict[str, tuple[dict, Path, dict]]:
  """Runs that must stop with one error line and leave their workdir as it was, all in
  one process: {name: (result, workdir, snapshot of the workdir before)}.
  - missing_data: an empty --manual_dir, for a dataset tfds has not prepared;
  - another_config: tiny_mnist's workdir (a copy) with another latent_dim;
  - corrupt_checkpoint: a copy whose latest checkpoint's files are overwritten, run on
    for another epoch."""
  succeeded(runs["tiny_mnist"][0])
  root = tmp_path_factory.mktemp("refused")
  (result, trained), tiny_args = runs["tiny_mnist"], RUNS["tiny_mnist"][1]
  data_flag, = [a for a in result["argv"] if a.startswith("--data_dir=")]
  for name in ("another_config", "corrupt_checkpoint"):
    shutil.copytree(trained, root / name)
  for f in (root / "corrupt_checkpoint" / "checkpoints" / "40").rglob("*"):
    if f.is_file():
      f.write_bytes(b"\x00garbage" * 10)
  (root / "empty").mkdir()
  cases = {
      "missing_data": [f"--manual_dir={root / 'empty'}", f"--data_dir={root / 'no_tfds'}"],
      "another_config": [data_flag, *tiny_args, "--latent_dim=3"],
      "corrupt_checkpoint": [data_flag, *tiny_args, "--epochs=3"],
  }
  before = {name: snapshot(root / name) for name in cases}
  results = run_cases([[f"--workdir={root / name}", *args] for name, args in cases.items()])
  return {name: (result, root / name, before[name])
          for name, result in zip(cases, results)}


@pytest.mark.slow
def test_missing_offline_data_names_the_files(refused_runs):
  result, _, _ = refused_runs["missing_data"]
  assert result["code"] == 1 and "Traceback" not in result["stderr"]
  assert "binarized_mnist_train.amat.gz" in result["stderr"]


@pytest.mark.slow
def test_workdir_with_another_config_is_refused_untouched(refused_runs):
  result, workdir, before = refused_runs["another_config"]
  assert result["code"] == 1 and "Traceback" not in result["stderr"]
  assert "different config" in result["stderr"] and "latent_dim" in result["stderr"]
  assert snapshot(workdir) == before


@pytest.mark.slow
def test_corrupt_checkpoint_is_reported_and_kept(refused_runs):
  result, workdir, before = refused_runs["corrupt_checkpoint"]
  assert result["code"] == 1
  assert_one_error_line(result["stderr"],
                        f"checkpoint {workdir / 'checkpoints' / '40'} cannot be read")
  assert len(result["stderr"].strip()) < 300
  assert snapshot(workdir) == before


def _restore_params(workdir: Path):
  config = config_lib.TrainConfig.from_dict(json.loads((workdir / "config.json").read_text()))
  like = training_step.init_state(jax.random.key(0), config)
  ckpt = checkpoint.Checkpointer(workdir / "checkpoints")
  state, _ = ckpt.restore(like, jax.random.key(0))
  ckpt.close()
  return state


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_the_same_parameters(runs, tmp_path):
  """Killed after its second epoch's checkpoint and run again, it ends with the
  parameters of the same run uninterrupted (RUNS' "uninterrupted"), bit for bit."""
  result, uninterrupted = runs["uninterrupted"]
  succeeded(result)
  data_dir, = [a.split("=", 1)[1] for a in result["argv"] if a.startswith("--data_dir=")]
  workdir = tmp_path / "killed"
  proc = cli(f"--workdir={workdir}", *KILLED, data_dir=data_dir, wait=False)
  deadline = time.time() + 240
  while not (workdir / "checkpoints" / "40").is_dir():  # 2 epochs done
    assert proc.poll() is None and time.time() < deadline, "run ended before it could be killed"
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  steps_at_kill = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
  assert max(steps_at_kill) < 240, "the run finished before the kill"

  resumed = cli(f"--workdir={workdir}", *KILLED, data_dir=data_dir)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "resumed from step" in resumed.stdout
  a, b = _restore_params(uninterrupted), _restore_params(workdir)
  assert int(a["step"]) == int(b["step"]) == 240
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["avb", "avb_ac"])
def test_avb_runs_end_to_end(runs, name):
  result, workdir = runs[name]
  succeeded(result)
  config = json.loads((workdir / "config.json").read_text())
  assert config["model"]["proposal"]["name"] == "implicit"
  assert config["objective"]["name"] == "avb"
  assert config["objective"]["adaptive_contrast"] == (name == "avb_ac")
  assert config["objective"]["kl_warmup_steps"] == (50 if name == "avb_ac" else 0)
  final = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert final["proposal"] == "moment-matched" and final["test_elbo"] is None
  assert final["test_nll_quadrature"] > np.log(4) - 1e-3
  # IS is a stochastic lower bound on log p(x): its NLL is not below the exact one.
  assert final["test_nll"] > final["test_nll_quadrature"] - 0.05
  assert (workdir / "figures" / "reconstructions.png").exists()


@pytest.mark.slow
def test_evaluate_with_the_runs_seed_reads_its_test_images_as_the_run_did(runs, tmp_path):
  """Dynamically binarized test images: experiments.evaluate --method=is with the run's
  seed and k gives each image the log p(x) of the run's own evaluation (the same
  binarization and draws, vbayes.keys); another seed binarizes them otherwise."""
  succeeded(runs["grey_dynamic"][0])
  workdir = tmp_path / "run"
  shutil.copytree(runs["grey_dynamic"][1], workdir)
  config = json.loads((workdir / "config.json").read_text())
  assert config["data"]["binarization"] == "dynamic"
  k, data_dir = config["eval_k"], runs["grey_dynamic"][1].parent / "grey"
  shutil.copytree(workdir, tmp_path / "other")
  same, other = run_cases([[f"--workdir={tmp_path / name}", "--method=is", f"--k={k}",
                            f"--seed={seed}", f"--data_dir={data_dir}"]
                           for name, seed in (("run", 0), ("other", 1))], module="evaluate")
  assert same["code"] == 0 and other["code"] == 0, (same["stderr"][-2000:],
                                                     other["stderr"][-2000:])
  run_log_px = np.load(workdir / final_evaluation.TEST_LOG_PX_FILE)
  np.testing.assert_allclose(np.load(workdir / "evaluation_is_log_px.npy"), run_log_px,
                             rtol=1e-6)
  assert not np.allclose(np.load(tmp_path / "other" / "evaluation_is_log_px.npy"), run_log_px)


@pytest.mark.slow
def test_evaluate_certifies_a_trained_run_and_writes_only_its_file(runs, tmp_path):
  """experiments.evaluate on a copy of the 2-D 4Frames IAF run: AIS (64 chains, 300
  steps) within 0.1 nats of exact quadrature, BDMC's lower bound below its upper, each
  printing its JSON line last and adding evaluation_<method>.json (and, for the test
  images, each image's log p(x) in evaluation_<method>_log_px.npy) and nothing else; a
  workdir without a run is one error line."""
  succeeded(runs["iaf"][0])
  workdir = tmp_path / "run"
  shutil.copytree(runs["iaf"][1], workdir)
  before = snapshot(workdir)
  commands = {
      "quadrature": [], "ais": ["--chains=64", "--ais_steps=300"],
      "bdmc": ["--images=8", "--chains=8", "--ais_steps=100"]}
  commands = {name: [f"--workdir={workdir}", f"--method={name}", *args]
              for name, args in commands.items()}
  commands["missing"] = [f"--workdir={tmp_path / 'empty'}", "--method=is"]
  commands["no_best"] = [f"--workdir={workdir}", "--method=is", "--checkpoint=best"]
  # Bounded as training bounds them: a 1-point grid gave NLL -0.009 on 4frames (true
  # about 2.5) and overwrote the good evaluation_quadrature.json; a seed past 32 bits
  # raised an OverflowError.
  commands["one_point"] = [f"--workdir={workdir}", "--method=quadrature",
                           "--quadrature_points=1"]
  commands["huge_seed"] = [f"--workdir={workdir}", "--method=is", "--seed=99999999999999999999"]
  # Steps far too large for every proposal to be refused: a warning says so (it said
  # nothing at acceptance 0.0), on a copy of the run.
  stuck = tmp_path / "stuck"
  shutil.copytree(runs["iaf"][1], stuck)
  commands["stuck"] = [f"--workdir={stuck}", "--method=ais", "--images=2", "--chains=2",
                       "--ais_steps=5", "--step_tuning=fixed", "--initial_step_size=50"]
  # A config.json that is valid JSON but no config, or no JSON at all: one line naming it
  # (a KeyError, TypeError or JSONDecodeError without the file's name before).
  for name, text in (("empty_config", "{}"), ("list_config", "[]"), ("cut_config", '{"mod')):
    (tmp_path / name).mkdir()
    (tmp_path / name / "config.json").write_text(text)
    commands[name] = [f"--workdir={tmp_path / name}", "--method=is"]
  out = dict(zip(commands, run_cases(list(commands.values()), module="evaluate")))
  # A run whose workdir is locked (training in it) is not evaluated under it.
  with workdir_lib.open_locked(stuck):
    busy, = run_cases([[f"--workdir={stuck}", "--method=is", "--k=2"]], module="evaluate")
  assert busy["code"] == 1
  assert_one_error_line(busy["stderr"], f"workdir {stuck} is in use by another run")
  assert out["stuck"]["code"] == 0, out["stuck"]["stderr"][-2000:]
  warnings = [l for l in out["stuck"]["stderr"].splitlines() if l.startswith("warning:")]
  assert len(warnings) == 1 and "barely moved" in warnings[0]
  assert json.loads((stuck / "evaluation_ais.json").read_text())["acceptance"] < 0.05
  for name, flag in (("one_point", "quadrature_points"), ("huge_seed", "seed"),
                     ("empty_config", "config.json is not a vbayes config"),
                     ("list_config", "config.json is not a vbayes config"),
                     ("cut_config", "config.json is not a vbayes config")):
    assert out[name]["code"] == 1
    assert_one_error_line(out[name]["stderr"], flag)
  assert out["missing"]["code"] == 1
  assert_one_error_line(out["missing"]["stderr"], "holds no config.json")
  assert out["no_best"]["code"] == 1  # 4frames has no validation images
  assert_one_error_line(out["no_best"]["stderr"], "holds no checkpoints_best/")
  lines = {}
  last_step = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  for name in ("quadrature", "ais", "bdmc"):
    assert out[name]["code"] == 0, out[name]["stderr"][-3000:]
    lines[name] = json.loads(out[name]["stdout"].strip().splitlines()[-1])
    assert lines[name] == json.loads((workdir / f"evaluation_{name}.json").read_text())
    assert lines[name]["step"] == last_step  # which checkpoint the numbers score
    assert lines[name]["config"] == json.loads((workdir / "config.json").read_text())
  assert abs(lines["ais"]["nll"] - lines["quadrature"]["nll"]) < 0.1
  for name in ("ais", "bdmc"):  # step sizes tuned on a pilot, then frozen, by default
    assert lines[name]["step_tuning"] == "pilot" and lines[name]["pilot_chains"] == 4
    assert 0.3 < lines[name]["acceptance"] <= 1
  assert lines["bdmc"]["lower"] <= lines["bdmc"]["upper"] and lines["bdmc"]["images"] == 8
  assert lines["bdmc"]["upper"] - lines["bdmc"]["lower"] < 0.5
  after = snapshot(workdir)
  assert set(after) - set(before) == {workdir / f"evaluation_{m}.json"
                                      for m in ("quadrature", "ais", "bdmc")} | {
                                          workdir / f"evaluation_{m}_log_px.npy"
                                          for m in ("quadrature", "ais")}
  for m in ("quadrature", "ais"):  # each test image's log p(x), whose mean is -nll
    log_px = np.load(workdir / f"evaluation_{m}_log_px.npy")
    assert float(-log_px.mean()) == pytest.approx(lines[m]["nll"], rel=1e-6)
  assert {p: after[p] for p in before} == before
