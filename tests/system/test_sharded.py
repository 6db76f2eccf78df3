"""Data parallelism: one training chunk over a mesh of 8 CPU devices equals the same
chunk on one device, for every objective and model family (tests/system/scripts/
sharded_check.py, in a process of its own: JAX fixes the device count when it starts)."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO, TESTS

pytestmark = pytest.mark.slow

SHARDED_OBJECTIVES = ("elbo", "iwae", "prior_is", "avb", "iwae_vamp_prior", "elbo_conv_net",
                      "iwae_two_layers", "iwae_iaf")


@pytest.fixture(scope="module")
def sharded_results(tmp_path_factory) -> dict:
  """{objective: what sharded_check.py measured for it on 8 CPU devices}."""
  out = tmp_path_factory.mktemp("sharded")
  done = subprocess.run(
      [sys.executable, str(TESTS / "system" / "scripts" / "sharded_check.py"), str(out),
       *SHARDED_OBJECTIVES],
      env={**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
           "JAX_NUM_CPU_DEVICES": "8"},
      capture_output=True, text=True, timeout=900, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  lines = (out / "results.jsonl").read_text().splitlines()
  return {r["objective"]: r for r in map(json.loads, lines)}


@pytest.mark.parametrize("objective", SHARDED_OBJECTIVES)
def test_sharded_step_equals_single_device_step(objective, sharded_results):
  result = sharded_results[objective]
  assert result["devices"] == 8
  assert result["param_devices"] == 8 and result["params_replicated"]
  assert result["sharded_all_reduce"] and not result["single_all_reduce"]
  assert result["max_abs_diff"] < 1e-5, result
  assert result["params_changed"] > 1e-3
