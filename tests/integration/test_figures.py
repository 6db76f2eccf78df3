"""The figure experiments end to end on tiny generated data: the six 2-D MNIST
scripts (--fast) each write their PNG at the size vbayes.plots.figure declares, sharing
one trained model; four_frames and avb_vs_vae write their tables and figures."""

import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.helpers.command_line import run_main
from vbayes import datasets
from vbayes.plots import figure as figure_plots

pytestmark = pytest.mark.slow  # the edit loop runs -m "not slow"

SCRIPTS = ("prior_samples", "latent_posterior", "interpolation", "true_vs_variational",
           "completion", "reconstructions_by_digit")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return tmp_path_factory.mktemp("mnist_2d")


def run_script(name, *args, data_dir):
  """experiments.<name> on `args` (`run_main`), reading its data from `data_dir`."""
  result = run_main(list(args), name, env={datasets.DATA_DIR_ENV: data_dir})
  return subprocess.CompletedProcess(result["argv"], result["code"], result["stdout"],
                                     result["stderr"])


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_writes_its_figure(name, workdir, tiny_tfds):
  out = run_script(name, f"--workdir={workdir}", "--fast", data_dir=tiny_tfds)
  assert out.returncode == 0, out.stderr[-3000:]
  path = workdir / "figures" / f"{name}.png"
  with Image.open(path) as im:
    assert im.size == figure_plots.PIXELS[name]
    pixels = np.asarray(im.convert("L"), np.float32)
  assert pixels.std() > 10  # something was drawn
  assert (workdir / "model" / "checkpoints").is_dir()
  if name != SCRIPTS[0]:
    assert "loading the trained model" in out.stdout  # trained once, then shared


def test_true_vs_variational_prints_consistent_kls(workdir, tiny_tfds):
  """log p(x_top) - ELBO(q) is KL(q || p): the grid KL and the SVI ELBO agree."""
  out = run_script("true_vs_variational", f"--workdir={workdir}", "--fast", "--svi_steps=400",
                   "--digits=3", data_dir=tiny_tfds)
  assert out.returncode == 0, out.stderr[-3000:]
  line = next(l for l in out.stdout.splitlines() if "log p(x_top)" in l)
  numbers = [float(w.strip(",;")) for w in line.replace("(", " ").split()
             if w.strip(",;").lstrip("-").replace(".", "", 1).isdigit()]
  gap, kl_qp, kl_pq = numbers[-3], numbers[-2], numbers[-1]
  assert kl_qp >= 0 and kl_pq >= 0
  assert abs(gap - kl_qp) < 0.1 + 0.1 * kl_qp, line


@pytest.mark.parametrize("args, message", [
    (("interpolation", "--pairs=1x2"), "--pairs takes digit pairs"),
    (("completion", "--num_completions=0"), "num_completions must be positive"),
    (("reconstructions_by_digit", "--per_digit=40"), "fewer than --per_digit=40"),
])
def test_bad_flags_give_one_clear_error(args, message, workdir, tiny_tfds):
  out = run_script(args[0], f"--workdir={workdir}", "--fast", *args[1:], data_dir=tiny_tfds)
  assert out.returncode == 1 and message in out.stderr and "Traceback" not in out.stderr


def test_avb_vs_vae_writes_its_table_and_figures(tmp_path, tiny_tfds):
  out = run_script("avb_vs_vae", f"--workdir={tmp_path}", "--fast", "--latent_dim=3",
                   "--kde_images=40", data_dir=tiny_tfds)
  assert out.returncode == 0, out.stderr[-3000:]
  results = json.loads((tmp_path / "results.json").read_text())
  assert set(results) == {"vae", "avb_ac"}
  assert results["avb_ac"]["proposal"] == "moment-matched" and results["vae"]["proposal"] == "encoder"
  assert all(np.isfinite(r["test_nll"]) and r["test_nll"] > 0 for r in results.values())
  assert all(np.isfinite(r["test_nll_first_40"]) for r in results.values())
  for name, size in (("prior_samples", "model_samples"), ("reconstructions", "model_reconstructions"),
                     ("latents", "model_latents")):
    with Image.open(tmp_path / "figures" / f"{name}.png") as im:
      assert im.size == figure_plots.PIXELS[size]
  assert "|" in (tmp_path / "results.md").read_text()


def test_four_frames_rejects_an_unknown_model(tmp_path):
  out = run_script("four_frames", f"--workdir={tmp_path}", "--models=avb,gan", data_dir=tmp_path)
  assert out.returncode == 1 and "--models takes some of vae, avb, avb_ac" in out.stderr
  assert not any(tmp_path.iterdir())  # nothing written


def test_four_frames_writes_exact_nlls_per_model_and_seed(tmp_path):
  out = run_script("four_frames", f"--workdir={tmp_path}", "--epochs=5", "--seeds=3",
                   "--samples=20", "--hidden_sizes=16", "--adversary_hidden_sizes=16",
                   data_dir=tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  results = json.loads((tmp_path / "results.json").read_text())
  assert set(results) == {"vae", "avb", "avb_ac"}
  for nlls in results.values():
    assert len(nlls) == 1 and all(v > np.log(4) - 1e-3 for v in nlls)  # none beats log 4
  assert "log 4" in (tmp_path / "results.md").read_text()
  with Image.open(tmp_path / "figures" / "four_frames_latents.png") as im:
    assert im.size == figure_plots.PIXELS["four_frames_latents"]
