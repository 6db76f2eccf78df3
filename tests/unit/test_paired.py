"""The paired comparison of two models on the same images (vbayes/evaluation/paired.py)
and its command line (experiments/compare.py)."""

import math

import numpy as np
import pytest

from vbayes.evaluation import paired



def test_the_paired_difference_written_out():
  """difference = mean_i (NLL_a - NLL_b), paired s.e. = sd(d) / sqrt(N), unpaired =
  sqrt(se_a^2 + se_b^2), against the sums written out for five images."""
  a = np.array([-90.0, -100.0, -80.0, -120.0, -95.0])
  b = a + np.array([1.0, 2.0, 0.5, 1.5, 1.0])  # b fits every image better
  got = paired.paired_difference(a, b)
  d = np.array([1.0, 2.0, 0.5, 1.5, 1.0])
  mean = d.sum() / 5
  sd = math.sqrt(((d - mean) ** 2).sum() / 4)
  se = lambda v: math.sqrt(((v - v.mean()) ** 2).sum() / 4) / math.sqrt(5)
  assert got == pytest.approx({"difference": mean, "paired_stderr": sd / math.sqrt(5),
                               "unpaired_stderr": math.sqrt(se(a) ** 2 + se(b) ** 2),
                               "images": 5})


def test_the_images_spread_cancels_in_the_paired_error():
  """Two models whose per-image log p(x) share the images' spread (sd 20 nats) and differ
  by 0.2 +- 0.5 nats per image, over 10000 images: the paired s.e. is 0.005 (0.5 /
  100), the unpaired about 0.28: a 0.2-nat lead is 40 paired s.e., under one unpaired."""
  rng = np.random.default_rng(0)
  a = -90 + 20 * rng.normal(size=10_000)
  b = a + 0.2 + 0.5 * rng.normal(size=10_000)
  got = paired.paired_difference(a, b)
  assert got["difference"] == pytest.approx(0.2, abs=4 * 0.005)
  assert got["paired_stderr"] == pytest.approx(0.005, rel=0.05)
  assert got["unpaired_stderr"] == pytest.approx(20 * math.sqrt(2) / 100, rel=0.05)


def test_vectors_of_other_images_are_refused():
  with pytest.raises(ValueError, match="same images"):
    paired.paired_difference(np.zeros(5), np.zeros(6))
  with pytest.raises(ValueError, match="non-finite"):
    paired.paired_difference(np.array([0.0, np.nan]), np.zeros(2))
