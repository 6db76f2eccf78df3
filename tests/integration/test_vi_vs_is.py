"""experiments.vi_vs_is end to end on tiny generated grey MNIST-like data (dynamic
binarization, the case whose held-out curve once skipped the binarization)."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers.command_line import run_main, succeeded
from vbayes import datasets
from vbayes import tfds_arrays

pytestmark = pytest.mark.slow  # the edit loop runs -m "not slow"



def test_vi_vs_is_writes_results_and_figures(tmp_path):
  rng = np.random.default_rng(0)
  grey = lambda n: (rng.random((n, 784)) ** 4 * 255).astype(np.uint8)  # dark, like digits
  tfds_arrays.save_arrays(tfds_arrays.cache_path("mnist", tmp_path / "tfds"),
                       {"train": grey(200), "test": grey(30),
                        "test_labels": np.arange(30, dtype=np.int32) % 10})
  out = run_main([f"--workdir={tmp_path / 'out'}", "--dataset=mnist", "--hidden_sizes=16",
                  "--epochs=2", "--batch_size=20", "--eval_k=20", "--quadrature_points=64",
                  "--curve_images=30", "--prior_k=4,8", "--iwae_k=3"], "vi_vs_is",
                 env={datasets.DATA_DIR_ENV: tmp_path / "tfds"})
  succeeded(out)
  results = json.loads((tmp_path / "out" / "results.json").read_text())
  assert set(results) == {"elbo", "iwae_k3", "prior_is_k4", "prior_is_k8"}
  for name, r in results.items():
    assert {"test_nll_quadrature", "test_nll_is", "test_elbo", "seconds_per_step",
            "train_seconds"} <= set(r)
    assert r["steps"] == 20 and r["train_seconds"] > 0
    assert r["is_proposal"] == ("prior" if name.startswith("prior") else "encoder")
    # IS is a stochastic lower bound on log p(x): its NLL sits above quadrature's (up to noise).
    assert r["test_nll_is"] > r["test_nll_quadrature"] - 1.0
  curve = [json.loads(l) for l in (tmp_path / "out" / "elbo" / "metrics.jsonl").read_text()
           .splitlines()]
  heldout = {r["step"]: r["heldout_nll_quadrature"] for r in curve
             if "heldout_nll_quadrature" in r}
  assert list(heldout) == [10, 20]
  # The curve's last point and the final evaluation score the same model on the same 30
  # test images, each binarized once by its own draw (a few nats apart); grey values
  # fed to the Bernoulli likelihood would give thousands of nats.
  assert abs(heldout[20] - results["elbo"]["test_nll_quadrature"]) < 25
  for name in ("grid_walks", "nll_vs_time"):
    with Image.open(tmp_path / "out" / "figures" / f"{name}.png") as im:
      assert im.size[0] > 400
  assert "| elbo |" in (tmp_path / "out" / "results.md").read_text()
