"""The benchmark scripts run at their --smoke size (tiny networks, 10 steps per call)
and print their JSON line; timings are not asserted."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from vbayes.models.networks import mlp

from tests.helpers.paths import REPO

pytestmark = pytest.mark.slow  # the edit loop runs -m "not slow"


# (script, arguments, keys its JSON line must have), each run once by `bench_smokes`.
BENCH_SMOKES = [
    ("train_throughput.py", ["--smoke", "--calls=1"],
     {"steps_per_s", "gflops", "peak_gflops", "fraction_of_peak", "matmul_ceiling_fraction",
      "adam_ceiling_fraction", "handwritten_steps_per_s", "ratio_to_handwritten"}),
    ("train_throughput.py", ["--smoke", "--calls=1", "--network=conv"],
     {"steps_per_s", "xla_mflops_per_step", "gflops", "peak_gflops", "fraction_of_peak",
      "conv_mflops_per_step", "conv_fraction_of_peak", "eval_images_per_s",
      "eval_fraction_of_peak"}),
    ("conv_layers.py", ["--smoke", "--calls=1"], {"layers"}),
    ("iwae_throughput.py", ["--smoke", "--calls=1", "--ks=5"],
     {"iwae_k5_fraction_of_peak", "eval_k5000_fraction_of_peak", "iwae_k5_steps_per_s",
      "eval_k5000_images_per_s", "iwae_k5_matmul_ceiling_fraction",
      "iwae_k5_adam_ceiling_fraction", "eval_k5000_matmul_ceiling_fraction", "peak_gflops",
      "iwae_k5_peak_gflops", "eval_k5000_peak_gflops", "iwae_k5_ratio_to_handwritten"}),
    ("ais_throughput.py", ["--smoke", "--calls=1"],
     {"leapfrog_steps_per_s", "gflops", "fraction_of_peak", "ceiling_fraction",
      "peak_gflops"}),
    ("study_throughput.py", ["--smoke", "--calls=1"], {"runs", "peak_gflops"}),
    ("backend_check.py", ["--smoke"],
     {"train_steps_per_s", "train_fraction_of_peak", "evaluation_images_per_s", "peak_gflops"}),
]


@pytest.fixture(scope="module")
def bench_smokes(tmp_path_factory) -> Path:
  """A folder with each of BENCH_SMOKES' JSON line, <i>.json (its last stdout line), or
  <i>.error (its stderr): each script in a process of its own, as a user runs it."""
  out_dir = tmp_path_factory.mktemp("bench_smokes")
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
  for i, (script, args, _) in enumerate(BENCH_SMOKES):
    out = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    if out.returncode == 0:
      (out_dir / f"{i}.json").write_text(out.stdout.strip().splitlines()[-1])
    else:
      (out_dir / f"{i}.error").write_text(out.stderr[-3000:])
  return out_dir


def smoke_result(folder: Path, i: int) -> dict:
  error = folder / f"{i}.error"
  assert not error.exists(), error.read_text()
  return json.loads((folder / f"{i}.json").read_text())


@pytest.mark.parametrize("i", range(len(BENCH_SMOKES)),
                         ids=[" ".join([s, *a]) for s, a, _ in BENCH_SMOKES])
def test_benchmark_prints_its_json_line(i, bench_smokes):
  _, _, keys = BENCH_SMOKES[i]
  result = smoke_result(bench_smokes, i)
  assert keys <= set(result)
  assert result["smoke"] is True
  for key in keys - {"runs", "layers"}:
    assert result[key] > 0
  for name, row in result.get("layers", {}).items():  # conv_layers.py: each layer's numbers
    assert all(value > 0 for value in row.values()), (name, row)
  assert "layers" not in keys or len(result["layers"]) == 6  # 4 gradients, 2 forward passes
  # Each group's fractions are against its own peak; the run's peak is the best of them.
  assert all(result["peak_gflops"] >= v for k, v in result.items() if k.endswith("_peak_gflops"))


def test_the_study_benchmark_projects_every_run_it_times(bench_smokes):
  """Its smoke size on the Burda et al. protocol (one and two layers)."""
  result = smoke_result(bench_smokes, [s for s, _, _ in BENCH_SMOKES].index("study_throughput.py"))
  assert set(result["runs"]) == {"one_layer_vae_k1", "two_layers_vae_k1"}
  for run in result["runs"].values():
    assert min(run.values()) > 0


def test_the_backend_check_agrees_with_its_cpu_reference(bench_smokes):
  """On the CPU the backend check's values (IS log p(x) and the VampPrior's log p(z) of
  the small checkpoint on its first images) equal the recorded CPU reference within its
  tolerance, and it says so."""
  result = smoke_result(bench_smokes, [s for s, _, _ in BENCH_SMOKES].index("backend_check.py"))
  assert result["backend"] == "cpu" and result["within_tolerance"] is True
  check = result["checks"]["gated_vampprior"]
  assert check["images"] == 5 and check["nll"] == pytest.approx(check["reference_nll"], abs=0.01)
  assert result["max_abs_diff"] <= result["tolerance"] == 0.01


@pytest.mark.parametrize("input_gradient", [False, True])
def test_mlp_train_flops_counts_what_xla_counts(input_gradient):
  """The FLOP count behind every fraction of peak against XLA's own count for one
  forward and backward pass of a bias-free ReLU MLP (ReLU and the loss add ~1%)."""
  sys.path.insert(0, str(REPO / "bench"))
  import common  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  sizes, batch = (200, 64, 32), 16
  ws = common._random_weights(jax.random.key(0), sizes)  # pylint: disable=protected-access
  x = jax.random.normal(jax.random.key(1), (batch, sizes[0]))
  loss = lambda ws, x: jnp.sum(jnp.sin(common.relu_mlp(ws, x)))
  grad = jax.grad(loss, argnums=(0, 1) if input_gradient else 0)
  xla = jax.jit(grad).lower(ws, x).compile().cost_analysis()["flops"]
  ours = common.mlp_train_flops(sizes, batch, input_gradient=input_gradient)
  assert ours == pytest.approx(xla, rel=0.05)


def test_xla_update_flops_is_the_matmul_count_plus_a_little_elementwise_work():
  """For the benchmarked MLP VAE, XLA's count of one update's FLOPs (behind the conv
  benchmark's rate) is the matmul count of mlp_train_flops plus at most 5% (the
  likelihood, KL, ReLU and Adam's elementwise work)."""
  sys.path.insert(0, str(REPO / "bench"))
  import common  # pylint: disable=g-import-not-at-top
  from vbayes import config as config_lib  # pylint: disable=g-import-not-at-top
  encoder, decoder, batch = common.VAE
  config = config_lib.TrainConfig(
      model=config_lib.ModelConfig(latent_dim=common.VAE.latent_dim,
                                   network=mlp.Config(hidden_sizes=common.VAE.hidden_sizes)),
      batch_size=batch)
  matmuls = (common.mlp_train_flops(encoder, batch)
             + common.mlp_train_flops(decoder, batch, input_gradient=True))
  assert 1.0 <= common.xla_update_flops(config) / matmuls <= 1.05
