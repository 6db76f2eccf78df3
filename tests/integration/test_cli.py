"""experiments.train end to end, as a user runs it: tiny generated data, bad inputs,
and a run killed with SIGKILL that resumes to the same parameters."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.cli_runs import RUNS
from tests.helpers.command_line import assert_one_error_line, run_main, snapshot, succeeded
from vbayes import config as config_lib
from vbayes.training import final_evaluation
from vbayes.training import loop as training_loop
from vbayes.training import workdir as workdir_lib


@pytest.mark.slow
def test_end_to_end_on_tiny_mnist_like_data(cli_run):
  result, workdir = cli_run("shared")
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
def test_grey_mnist_with_dynamic_binarization_or_gaussian_decoder(cli_run, binarization):
  result, workdir = cli_run(f"grey_{binarization}")
  succeeded(result)
  config = json.loads((workdir / "config.json").read_text())
  assert config["model"]["likelihood"]["name"] == ("gaussian" if binarization == "none"
                                                   else "bernoulli")
  final = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert np.isfinite(final["test_nll"]) and "test_nll_quadrature" not in final


@pytest.mark.slow
def test_the_parts_added_as_one_file_each_train_and_evaluate_from_the_command_line(cli_run):
  """--decoder=continuous_bernoulli on grey pixels and --prior=mixture: config.json holds
  the part and its settings, the test NLL is finite, and the mixture's parameters were
  trained (its weights moved from equal)."""
  for name, family, want in (("continuous_bernoulli", "likelihood", {"name":
                                                                     "continuous_bernoulli"}),
                             ("mixture_prior", "prior", {"name": "mixture", "num_components": 3,
                                                         "component_init_sd": 1.0})):
    result, workdir = cli_run(name)
    succeeded(result)
    config = json.loads((workdir / "config.json").read_text())
    assert config["model"][family] == want
    final = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(final["test_nll"]), name
  config = config_lib.TrainConfig.from_dict(
      json.loads((cli_run("mixture_prior")[1] / "config.json").read_text()))
  logits = training_loop.restore_params(cli_run("mixture_prior")[1], config)["prior"]["logits"]
  assert float(np.ptp(np.asarray(logits))) > 0
  final = json.loads((cli_run("mixture_prior")[1] / "metrics.jsonl").read_text().splitlines()[-1])
  assert np.isfinite(final["test_nll_quadrature"])  # a 2-D latent: exact quadrature too


@pytest.mark.slow
def test_four_frames_learns(cli_run):
  result, workdir = cli_run("four_frames")
  succeeded(result)
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  losses = [r["train_loss"] for r in records if "train_loss" in r]
  assert losses[-1] < losses[0]
  # 4frames is uniform over 4 images: no model beats log 4 nats.
  assert records[-1]["test_nll_quadrature"] > np.log(4) - 1e-3


@pytest.mark.slow
def test_the_elbo_trains_a_vamp_prior_with_the_monte_carlo_kl(cli_run):
  """The command the refusal of the analytic KL names: --prior=vamp --kl_estimator=mc."""
  result, workdir = cli_run("vamp_prior_elbo")
  succeeded(result)
  config = json.loads((workdir / "config.json").read_text())
  assert config["objective"] == {"name": "elbo", "kl_estimator": "mc", "kl_warmup_steps": 0}
  assert config["model"]["prior"]["name"] == "vamp"
  final = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert final["test_nll_quadrature"] > np.log(4) - 1e-3


@pytest.mark.slow
def test_a_run_from_a_study_config_with_flags_and_overrides(cli_run):
  """--config=vae_50d: its latent_dim; the flags given and --set override their fields."""
  result, workdir = cli_run("from_config")
  succeeded(result)
  config = config_lib.TrainConfig.from_dict(json.loads((workdir / "config.json").read_text()))
  assert config.model.latent_dim == 50 and config.model.network.activation == "tanh"
  assert config.model.data_dim == 4 and config.model.network.hidden_sizes == (16,)
  assert config.epochs == 2 and config.eval_k == 20
  assert json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 100


@pytest.mark.slow
@pytest.mark.parametrize("name", ["iwae_dreg", "iwae_stl", "prior_is", "renyi", "vamp_prior",
                                  "two_layers", "iaf"])
def test_importance_weighted_objectives_run_end_to_end(cli_run, name):
  result, workdir = cli_run(name)
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
    ("--set=eval_batch_size=1000000000", "eval_batch_size=1000000000: one evaluation step of"),
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


def run_cases(cases: list[list[str]], module: str = "train", env: dict | None = None):
  return [run_main(case, module, env=env) for case in cases]


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
  """A process id outside 0 .. N-1 (it was accepted with one process), a
  JAX_PROCESS_ID that is no integer (a ValueError traceback at import before) and a
  coordinator address that is no host:port: one error line each, before anything is
  written."""
  for module in ("train", "evaluate"):
    cases = [[f"--workdir={tmp_path / module}", "--num_processes=1", "--process_id=3"]]
    result, = run_cases(cases, module=module)
    assert result["code"] == 1, result
    assert_one_error_line(result["stderr"], "--process_id=3 (or $JAX_PROCESS_ID) is outside")
    result, = run_cases([[f"--workdir={tmp_path / module}"]], module=module,
                        env={"JAX_PROCESS_ID": "abc"})
    assert result["code"] == 1, result
    assert_one_error_line(result["stderr"], "JAX_PROCESS_ID='abc' is not a process index")
    # A coordinator address that is no host:port: a segfault (localhost:abc) and an
    # IndexError traceback (nonsense) inside jax.distributed before.
    for address in ("localhost:abc", "nonsense", "localhost:99999", ":8476"):
      result, = run_cases([[f"--workdir={tmp_path / module}", "--num_processes=2",
                            "--process_id=0", f"--coordinator_address={address}"]],
                          module=module)
      assert result["code"] == 1, result
      assert_one_error_line(result["stderr"], f"--coordinator_address={address} is not host:port")
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
def refused_runs(cli_run, tmp_path_factory) -> dict[str, tuple[dict, Path, dict]]:
  """Runs that must stop with one error line and leave their workdir as it was, all in
  one process: {name: (result, workdir, snapshot of the workdir before)}.
  - missing_data: an empty --manual_dir, for a dataset tfds has not prepared;
  - another_config: the shared run's workdir (a copy) with another latent_dim;
  - corrupt_checkpoint: a copy whose latest checkpoint's files are overwritten, run on
    for another epoch."""
  succeeded(cli_run("shared")[0])
  root = tmp_path_factory.mktemp("refused")
  (result, trained), tiny_args = cli_run("shared"), RUNS["shared"][1]
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


@pytest.mark.slow
@pytest.mark.parametrize("name", ["avb", "avb_ac"])
def test_avb_runs_end_to_end(cli_run, name):
  result, workdir = cli_run(name)
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
def test_evaluate_with_the_runs_seed_reads_its_test_images_as_the_run_did(cli_run, tmp_path):
  """Dynamically binarized test images: experiments.evaluate --method=is with the run's
  seed and k gives each image the log p(x) of the run's own evaluation (the same
  binarization and draws, vbayes.keys); another seed binarizes them otherwise."""
  succeeded(cli_run("grey_dynamic")[0])
  workdir = tmp_path / "run"
  shutil.copytree(cli_run("grey_dynamic")[1], workdir)
  config = json.loads((workdir / "config.json").read_text())
  assert config["data"]["binarization"] == "dynamic"
  k, data_dir = config["eval_k"], cli_run("grey_dynamic")[1].parent / "grey"
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
def test_evaluate_certifies_a_trained_run_and_writes_only_its_file(cli_run, tmp_path):
  """experiments.evaluate on a copy of the 2-D 4Frames IAF run: AIS (64 chains, 300
  steps) within 0.1 nats of exact quadrature, BDMC's lower bound below its upper, each
  printing its JSON line last and adding evaluation_<method>.json (and, for the test
  images, each image's log p(x) in evaluation_<method>_log_px.npy) and nothing else; a
  workdir without a run is one error line."""
  succeeded(cli_run("iaf")[0])
  workdir = tmp_path / "run"
  shutil.copytree(cli_run("iaf")[1], workdir)
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
  # AIS's batch of images times chains beyond the memory: refused before any work.
  commands["huge_chains"] = [f"--workdir={workdir}", "--method=ais", "--chains=10000000000"]
  # Steps far too large for every proposal to be refused: a warning says so (it said
  # nothing at acceptance 0.0), on a copy of the run.
  stuck = tmp_path / "stuck"
  shutil.copytree(cli_run("iaf")[1], stuck)
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
                     ("huge_chains", "--batch_size=10 x --chains=10000000000: one evaluation"),
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


def test_the_command_compares_two_files_and_refuses_a_missing_one(tmp_path):
  a, b = tmp_path / "a.npy", tmp_path / "b.npy"
  np.save(a, np.array([-90.0, -100.0, -80.0], np.float32))
  np.save(b, np.array([-89.0, -98.0, -80.0], np.float32))
  ok = run_main([f"--a={a}", f"--b={b}"], "compare")
  succeeded(ok)
  line = json.loads(ok["stdout"].strip().splitlines()[-1])
  assert line["difference"] == pytest.approx(1.0) and line["images"] == 3
  missing = run_main([f"--a={a}", f"--b={tmp_path}"], "compare")
  assert missing["code"] == 1
  assert_one_error_line(missing["stderr"], "test_log_px.npy")
