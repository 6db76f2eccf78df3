"""Two models compared on the same test images, by the per-image differences.

    d_i = NLL_a(x_i) - NLL_b(x_i) = log p_b(x_i) - log p_a(x_i),   i = 1..N,
    difference = mean_i d_i,   paired s.e. = sd_i(d_i) / sqrt(N)   (sample sd, ddof 1).

Most of each model's own standard error is the spread of the images (a digit that is
hard for one model is hard for the other), which cancels in d_i: the paired s.e. is
the one a claim "a beats b" needs, and the unpaired sqrt(se_a^2 + se_b^2), reported
beside it, overstates the uncertainty (often several-fold). Both vectors must score the
same images in the same order, binarized alike.
"""

import math

import numpy as np


def paired_difference(log_px_a_N, log_px_b_N) -> dict:
  """NLL_a - NLL_b over the same N images: {"difference", "paired_stderr",
  "unpaired_stderr", "images"}; ValueError if the vectors differ in length, hold
  non-finite values or have fewer than two images."""
  a, b = np.asarray(log_px_a_N, np.float64), np.asarray(log_px_b_N, np.float64)
  if a.shape != b.shape or a.ndim != 1:
    raise ValueError(f"a paired comparison needs one value per image for the same images: "
                     f"got arrays of shapes {a.shape} and {b.shape}")
  if len(a) < 2:
    raise ValueError("a standard error needs at least two images")
  if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
    raise ValueError("the per-image log p(x) values hold non-finite numbers")
  d = b - a  # NLL_a - NLL_b
  se = lambda v: float(np.std(v, ddof=1) / math.sqrt(len(v)))
  return {"difference": float(d.mean()), "paired_stderr": se(d),
          "unpaired_stderr": math.sqrt(se(a) ** 2 + se(b) ** 2), "images": int(len(d))}
