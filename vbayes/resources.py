"""What a run needs of memory, estimated before any of it is allocated.

    check_training_fits(model, batch_size)     the parameters, their gradient and Adam's
                                               two moments, and a batch's decoder output
    check_quadrature_fits(points)              the points^2 grid of latent points
    check_evaluation_fits(model, rows)         the smallest step of an evaluation: one
                                               sample of each of a batch's images, or
                                               a batch's AIS chains
    largest_array_per_decoder_row(model)       what sizes evaluation's chunks of samples

Each compares its estimate with the memory of the device (its reported limit; for a CPU,
the machine's physical memory) and raises ResourceError, naming the setting to change,
when the estimate exceeds MEMORY_SHARE of it. The estimates count float32 arrays that
must exist at once (not, say, an AVB adversary's parameters), so they are lower bounds: a run that passes may still run out, and
experiments/ turns that RESOURCE_EXHAUSTED into one error line as well.
"""

import functools
import math
import os

import jax
import jax.extend
import jax.numpy as jnp

from vbayes.errors import UserError

MEMORY_SHARE = 0.8  # of the device's memory a run may plan to use
BYTES = 4  # float32


class ResourceError(UserError):
  """A run that cannot fit in memory; the message names the setting to change."""


def device_memory(device=None) -> int:
  """Bytes of memory of `device` (default the first): its reported limit, or for a CPU
  (or a device that reports none) the machine's physical memory."""
  device = jax.devices()[0] if device is None else device
  stats = device.memory_stats() if device.platform != "cpu" else None
  limit = (stats or {}).get("bytes_limit")
  if limit:
    return int(limit)
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parameter_count(model) -> int:
  """The model's number of parameters, from the shapes of model.init (nothing allocated)."""
  shapes = jax.eval_shape(model.init, jax.random.key(0))
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))


@functools.lru_cache(maxsize=64)
def largest_array_per_decoder_row(model) -> int:
  """Floats per decoder row of the largest array that model.log_likelihood_of_samples
  makes (traced on shapes, nothing computed): the logits, data_dim, for an MLP no wider
  than its images; a feature map for a conv decoder (14x14x32 = 6272 for 32 channels on
  28x28 images). Traced for 8 and 16 rows, each array's growth over 8 rows, so that
  arrays of the parameters alone do not count. What evaluation's chunks are sized by."""
  from vbayes.models import as_model  # pylint: disable=g-import-not-at-top
  model = as_model(model)
  params = jax.eval_shape(model.init, jax.random.key(0))
  x = jax.ShapeDtypeStruct((1, model.data_dim), jnp.float32)
  sizes = [list(_array_sizes(jax.make_jaxpr(model.log_likelihood_of_samples)(
      params, jax.ShapeDtypeStruct((1, rows, model.latent_dim), jnp.float32), x).jaxpr))
           for rows in (8, 16)]
  return max(model.data_dim, max((b - a for a, b in zip(*sizes)), default=0) // 8)


def _array_sizes(jaxpr):
  """The sizes of the arrays every equation of jaxpr makes, those of nested jaxprs too,
  in order."""
  for equation in jaxpr.eqns:
    yield from (math.prod(var.aval.shape) for var in equation.outvars
                if hasattr(var.aval, "shape"))
    for value in equation.params.values():
      for inner in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(inner, jax.extend.core.ClosedJaxpr):
          yield from _array_sizes(inner.jaxpr)
        elif isinstance(inner, jax.extend.core.Jaxpr):
          yield from _array_sizes(inner)


def _gib(num_bytes: float) -> str:
  return f"{num_bytes / 2**30:.3g} GiB"


def check_training_fits(model, batch_size: int, available: int | None = None):
  """ResourceError unless the parameters with their gradient and Adam's two moments (4
  copies) and a batch's decoder output fit. available: bytes (default device_memory())."""
  available = device_memory() if available is None else available
  params = parameter_count(model)
  need = BYTES * (4 * params + 2 * batch_size * model.data_dim)
  if need > MEMORY_SHARE * available:
    raise ResourceError(
        f"the model has {params:,} parameters: training needs at least {_gib(need)} "
        f"(parameters, gradient and Adam's moments), more than {MEMORY_SHARE:.0%} of this "
        f"device's {_gib(available)}; use a smaller model (model.latent_dim, "
        "model.hidden_sizes)")


def check_quadrature_fits(points: int, available: int | None = None,
                          flag: str = "quadrature_points"):
  """ResourceError unless the points x points grid of 2-D latent points (and its log
  densities) fits. available: bytes (default device_memory())."""
  available = device_memory() if available is None else available
  need = BYTES * 3 * points * points  # z [G, 2] and one value per point
  if need > MEMORY_SHARE * available:
    raise ResourceError(
        f"{flag}={points}: the {points}x{points} quadrature grid needs at least "
        f"{_gib(need)}, more than {MEMORY_SHARE:.0%} of this device's {_gib(available)}; "
        f"use fewer points (512 is the default)")


# Arrays the size of a decoder row's largest (`largest_array_per_decoder_row`) that an
# evaluation step holds at once per row (the logits, their temporaries, the hidden
# layers): as vbayes/evaluation/importance_sampling.py counts them.
ROW_ARRAYS = 16


def check_evaluation_fits(model, rows: int, available: int | None = None,
                          flag: str = "eval_batch_size", setting: str | None = None,
                          gradient: bool = False):
  """ResourceError unless the smallest step of an evaluation fits: `rows` decoder rows at
  once (importance sampling: one sample of each of a batch's images, the chunks of
  samples per step are sized to the memory from there; AIS: every chain of a batch's
  images, with the gradient of the likelihood, which doubles the estimate). flag: the
  setting to change; setting: how it reads (default flag=rows). available: bytes
  (default device_memory())."""
  available = device_memory() if available is None else available
  need = (BYTES * ROW_ARRAYS * largest_array_per_decoder_row(model) * rows
          * (2 if gradient else 1))
  if need > MEMORY_SHARE * available:
    raise ResourceError(
        f"{setting or f'{flag}={rows}'}: one evaluation step of {rows:,} decoder rows "
        f"needs at least {_gib(need)}, more than {MEMORY_SHARE:.0%} of this device's "
        f"{_gib(available)}; use a smaller {flag}")
