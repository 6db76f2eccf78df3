"""Shipped checkpoints (experiments/checkpoints/<row>/): parameters as a .npz that numpy
alone reads (vbayes/training/params_npz.py), exported from a run by
experiments.export_checkpoint and evaluated by experiments.evaluate like a workdir; every
shipped one still gives the NLL recorded beside it."""

import json
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers.command_line import run_main

from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes.models import build
from vbayes.training import loop, params_npz
from vbayes.models.networks import mlp
from vbayes.models.priors import vamp

from tests.helpers.paths import REPO
SHIPPED = sorted(p for p in (REPO / "experiments" / "checkpoints").glob("*")
                 if (p / params_npz.PARAMS_FILE).is_file())
TINY = config_lib.TrainConfig(
    model=config_lib.ModelConfig(data_dim=4, latent_dim=2, network=mlp.Config(hidden_sizes=(8,))),
    data=config_lib.DataConfig(dataset="4frames"), batch_size=4, epochs=2, steps_per_call=5,
    eval_k=10, quadrature_points=64)


def test_parameters_round_trip_through_numpy_alone(tmp_path):
  """Saved, every leaf is an array named by its path that np.load reads; loaded against
  the model's structure, the pytree is equal to the one saved."""
  model = build(config_lib.ModelConfig(data_dim=6, latent_dim=2,
                                       network=mlp.Config(hidden_sizes=(5,)),
                                       prior=vamp.Config(num_pseudo_inputs=3)))
  params = model.init(jax.random.key(0))
  path = tmp_path / "params.npz"
  params_npz.save(params, path)
  with np.load(path) as f:
    names = set(f.files)
    np.testing.assert_array_equal(f["encoder/layer_0/w"], params["encoder"]["layer_0"]["w"])
  assert names == {"decoder/layer_0/w", "decoder/layer_0/b", "decoder/layer_1/w",
                   "decoder/layer_1/b", "encoder/layer_0/w", "encoder/layer_0/b",
                   "encoder/layer_1/w", "encoder/layer_1/b", "prior/pseudo_inputs"}
  loaded = params_npz.load(path, like=model.init(jax.random.key(1)))
  jax.tree.map(np.testing.assert_array_equal, loaded, params)


def test_a_parameters_file_that_does_not_fit_is_one_clear_error(tmp_path):
  """Another model's parameters (a missing leaf, an unknown one, another shape), a file
  that is not a .npz, non-finite parameters: a ParamsFileError naming the problem, and
  nothing written for the last."""
  small = build(config_lib.ModelConfig(data_dim=6, latent_dim=2,
                                       network=mlp.Config(hidden_sizes=(5,))))
  path = tmp_path / "params.npz"
  params_npz.save(small.init(jax.random.key(0)), path)
  vamp_model = build(config_lib.ModelConfig(data_dim=6, latent_dim=2,
                                      network=mlp.Config(hidden_sizes=(5,)),
                                      prior=vamp.Config(num_pseudo_inputs=3)))
  with pytest.raises(params_npz.ParamsFileError, match="missing prior/pseudo_inputs"):
    params_npz.load(path, like=vamp_model.init(jax.random.key(0)))
  wider = build(config_lib.ModelConfig(data_dim=6, latent_dim=2,
                                       network=mlp.Config(hidden_sizes=(7,))))
  with pytest.raises(params_npz.ParamsFileError, match="layer_0/b has shape"):
    params_npz.load(path, like=wider.init(jax.random.key(0)))
  (tmp_path / "bad.npz").write_text("not an archive")
  with pytest.raises(params_npz.ParamsFileError, match="cannot be read"):
    params_npz.load(tmp_path / "bad.npz", like=small.init(jax.random.key(0)))
  broken = jax.tree.map(lambda a: a.at[0].set(jnp.nan), small.init(jax.random.key(0)))
  with pytest.raises(params_npz.ParamsFileError, match="not finite"):
    params_npz.save(broken, tmp_path / "broken.npz")
  assert not (tmp_path / "broken.npz").exists()
  assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def _command(module: str, *args: str) -> subprocess.CompletedProcess:
  """`python -m experiments.<module> ARGS` in this process (`run_main`)."""
  result = run_main(list(args), module.removeprefix("experiments."))
  return subprocess.CompletedProcess(result["argv"], result["code"], result["stdout"],
                                     result["stderr"])


@pytest.mark.slow
def test_an_exported_run_evaluates_like_its_workdir(tmp_path):
  """experiments.export_checkpoint writes config.json, params.npz and reference.json (the
  quick check and the run's test numbers); experiments.evaluate on that folder gives the
  same importance-sampled NLL as on the run's workdir; a second export into the same
  folder is refused with one error line and changes nothing."""
  workdir, out = tmp_path / "run", tmp_path / "shipped"
  loop.run(TINY, workdir, log=lambda line: None)
  exported = _command("experiments.export_checkpoint", f"--workdir={workdir}", f"--out={out}")
  assert exported.returncode == 0, exported.stderr[-2000:]
  assert sorted(p.name for p in out.iterdir()) == ["config.json", "params.npz",
                                                   "reference.json", "test_log_px.npy"]
  reference = params_npz.read_reference(out)
  assert reference["check"]["images"] == 4 and reference["check"]["k"] == 100
  final = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert reference["run"]["test_nll"] == final["test_nll"]
  losses = [json.loads(l)["train_loss"] for l in (workdir / "metrics.jsonl").read_text()
            .splitlines() if "train_loss" in l]
  assert reference["run"]["final_train_loss"] == losses[-1]
  log_px = np.load(out / "test_log_px.npy")  # the run's per-image values, copied
  np.testing.assert_array_equal(log_px, np.load(workdir / "test_log_px.npy"))
  assert log_px.shape == (4,) and float(-log_px.mean()) == pytest.approx(final["test_nll"],
                                                                         rel=1e-6)
  data = data_lib.load(TINY.data)
  params = loop.restore_params(workdir, TINY)
  again = params_npz.reference_check(params, TINY, data.test, data.binarization)
  assert again["nll"] == pytest.approx(reference["check"]["nll"], abs=1e-6)
  nlls = []
  for folder in (workdir, out):
    result = _command("experiments.evaluate", f"--workdir={folder}", "--method=is", "--k=50")
    assert result.returncode == 0, result.stderr[-2000:]
    nlls.append(json.loads(result.stdout.strip().splitlines()[-1])["nll"])
  assert nlls[0] == pytest.approx(nlls[1], abs=1e-6)
  before = {p.name: p.read_bytes() for p in out.iterdir()}
  refused = _command("experiments.export_checkpoint", f"--workdir={workdir}", f"--out={out}")
  assert refused.returncode == 1 and refused.stderr.strip().startswith("error:")
  assert len(refused.stderr.strip().splitlines()) == 1
  assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_every_shipped_checkpoint_has_a_backend_reference():
  """bench/backend_check.py compares every shipped checkpoint with CPU values recorded in
  bench/backend_check/reference.json: one without them would fail the check."""
  reference = json.loads((REPO / "bench" / "backend_check" / "reference.json").read_text())
  assert {p.name for p in SHIPPED} <= set(reference["checkpoints"])
  assert reference["backend"] == "cpu"


@pytest.mark.slow  # tfds prepares both datasets from the original files first (~25 s)
@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_checkpoint_gives_its_recorded_nll(folder, tfds_prepared_from_original_files):
  """Each shipped checkpoint, loaded by numpy and the model its config.json names, gives
  the NLL recorded beside it on the first 100 test images (IS, k=100, fixed keys) within
  0.01 nats (float32 sums in another order on another machine), and its recorded test
  NLL (the card's number) is the mean of the per-image values shipped beside it."""
  config, params = params_npz.load_shipped(folder)
  data = data_lib.load(config.data, data_dir=tfds_prepared_from_original_files)
  reference = params_npz.read_reference(folder)
  got = params_npz.reference_check(params, config, data.test, data.binarization)
  assert got["nll"] == pytest.approx(reference["check"]["nll"], abs=0.01)
  log_px = np.load(folder / "test_log_px.npy")  # the card's number is their mean
  assert log_px.shape == (len(data.test),)
  assert float(-log_px.mean()) == pytest.approx(reference["run"]["test_nll"], rel=1e-6)
  assert reference["run"]["test_nll_stderr"] > 0
