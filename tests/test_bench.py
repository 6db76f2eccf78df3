"""The benchmark scripts run at their --smoke size (tiny networks, 10 steps per call)
and print their JSON line; timings are not asserted."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the edit loop runs -m "not slow"

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script, args, keys", [
    ("train_throughput.py", ["--smoke", "--calls=1"],
     {"steps_per_s", "gflops", "peak_gflops", "fraction_of_peak", "matmul_ceiling_fraction",
      "adam_ceiling_fraction", "handwritten_steps_per_s", "ratio_to_handwritten"}),
    ("train_throughput.py", ["--smoke", "--calls=1", "--network=conv"],
     {"steps_per_s", "xla_mflops_per_step", "gflops", "peak_gflops", "fraction_of_peak"}),
    ("iwae_throughput.py", ["--smoke", "--calls=1", "--ks=5"],
     {"iwae_k5_fraction_of_peak", "eval_k5000_fraction_of_peak", "iwae_k5_steps_per_s",
      "eval_k5000_images_per_s", "iwae_k5_matmul_ceiling_fraction",
      "iwae_k5_adam_ceiling_fraction", "eval_k5000_matmul_ceiling_fraction", "peak_gflops",
      "iwae_k5_peak_gflops", "eval_k5000_peak_gflops", "iwae_k5_ratio_to_handwritten"}),
    ("ais_throughput.py", ["--smoke", "--calls=1"],
     {"leapfrog_steps_per_s", "gflops", "fraction_of_peak", "ceiling_fraction",
      "peak_gflops"}),
])
def test_benchmark_prints_its_json_line(script, args, keys):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
  out = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], env=env,
                       capture_output=True, text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert keys <= set(result)
  assert result["smoke"] is True
  for key in keys:
    assert result[key] > 0
  # Each group's fractions are against its own peak; the run's peak is the best of them.
  assert all(result["peak_gflops"] >= v for k, v in result.items() if k.endswith("_peak_gflops"))


def test_the_study_benchmark_projects_every_run_it_times():
  """Its smoke size on the Burda et al. protocol (one and two layers)."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
  out = subprocess.run([sys.executable, str(REPO / "bench" / "study_throughput.py"),
                        "--smoke", "--calls=1"], env=env, capture_output=True, text=True,
                       timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert set(result["runs"]) == {"one_layer_vae_k1", "two_layers_vae_k1"}
  for run in result["runs"].values():
    assert min(run.values()) > 0


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
  config = config_lib.TrainConfig(model=config_lib.ModelConfig(
      latent_dim=common.VAE.latent_dim, hidden_sizes=common.VAE.hidden_sizes), batch_size=batch)
  matmuls = (common.mlp_train_flops(encoder, batch)
             + common.mlp_train_flops(decoder, batch, input_gradient=True))
  assert 1.0 <= common.xla_update_flops(config) / matmuls <= 1.05
