"""experiments.four_frames' results table: spreads over seeds are sample sds (ddof=1)."""

import numpy as np

from experiments import four_frames  # defines absl flags; they are never parsed here


def _row(table: str, title: str) -> list[str]:
  (line,) = [l for l in table.splitlines() if l.startswith(f"| {title} |")]
  return [cell.strip() for cell in line.strip("|").split("|")]


def test_results_table_gives_mean_and_sample_sd_over_seeds():
  """For 1.5, 1.6, 1.7 the sample sd sqrt(sum (v - 1.6)^2 / (3 - 1)) is 0.100; the
  population sd (ddof=0) would be 0.082."""
  results = {"vae": [1.5, 1.6, 1.7], "avb": [1.404, 1.398, 1.41]}
  table = four_frames.results_table(results, [0, 1, 2])
  _, cell, per_seed, gap = _row(table, "VAE (ELBO)")
  assert cell == "1.600 ± 0.100"
  assert per_seed == "1.500, 1.600, 1.700"
  assert gap == f"{1.6 - np.log(4):+.3f}"
  _, cell, _, _ = _row(table, "AVB")
  assert cell == f"1.404 ± {np.std([1.404, 1.398, 1.41], ddof=1):.3f}" == "1.404 ± 0.006"
  assert "mean ± sample sd (ddof=1) over seeds [0, 1, 2]" in table.splitlines()[0]


def test_results_table_with_one_seed_has_no_spread():
  """One seed has no sample sd: the cell is the value alone, not '± nan' or '± 0.000'."""
  table = four_frames.results_table({"vae": [1.5]}, [3])
  _, cell, per_seed, _ = _row(table, "VAE (ELBO)")
  assert cell == "1.500 (one seed)"
  assert per_seed == "1.500"
