"""Matrix-product precision, decided in one place.

On TPU a float32 matrix product or convolution runs by default as one bfloat16 pass (8
bits of mantissa); on recent NVIDIA GPUs as TF32 (10 bits). XLA:CPU ignores the setting
and always computes in float32, so no CPU run shows what the default costs elsewhere:
a VampPrior density's expansion into products moves by several nats per z in bfloat16
where many components overlap (up to 6 at posterior scale 0.03 in
tests/unit/test_precision.py, 22 at 0.01), and decoder logits shift. vbayes therefore asks explicitly:

  ESTIMATES = "highest"  every log-density, likelihood and estimator (IS, AIS, BDMC,
                         quadrature, SVI, held-out bounds, the VampPrior mixture, kernel
                         density, gradient SNR): full float32 on every backend, through
                         `estimates` around each jitted entry point;
  training               a training step's products follow TrainConfig.matmul_precision
                         ("highest" by default; "default" lets an accelerator use its
                         fast passes, at the price of numbers that depend on the backend).

tests/unit/test_precision.py lowers the evaluation programs and every part's log-density and
fails on any product below HIGHEST, and shows on the CPU, by rounding the products'
inputs to bfloat16, what the guard prevents.
"""

import functools

import jax
import jax.numpy  # pylint: disable=unused-import

ESTIMATES = "highest"


# A matrix product at full float32 on every backend, whatever the surrounding precision.
matmul_highest = functools.partial(jax.numpy.matmul, precision=jax.lax.Precision.HIGHEST)


def traced_at(fn, matmul_precision: str | None = None):
  """`fn` with every matrix product and convolution it traces at `matmul_precision`
  (default: ESTIMATES as it is when `fn` is traced), through jax.default_matmul_precision
  around its body; under `jax.jit`, or called while a jitted function traces."""

  @functools.wraps(fn)
  def at_precision(*args, **kwargs):
    with jax.default_matmul_precision(matmul_precision or ESTIMATES):
      return fn(*args, **kwargs)

  return at_precision


def estimates(fn):
  """`fn` at ESTIMATES precision: the decorator of every estimator's jitted entry point."""
  return traced_at(fn)
