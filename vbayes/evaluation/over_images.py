"""One estimator mapped over a set of images, written once for every evaluation.

    values = map_over_images(estimate_batch, images_NxD, key=eval_key,
                             binarization="dynamic", batch_size=100)
    values["log_px"]          # [N], in image order, on every process

estimate_batch(i, x_BxD) -> {name: [B, ...] array} runs on the images of batch i, as the
model sees them: binarized with each image's own key (keys.item(keys.stream(key,
BINARIZE), image index), so an image reads the same in a run's evaluation and in
experiments.evaluate, at any batch size). The last batch is padded by repeating its
last image; under several processes each takes every P-th batch
(vbayes.distributed.my_batches), and every process receives every image's values,
padding dropped. Keys of an estimator's own draws come from the batch index i.
"""

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vbayes import data as data_lib
from vbayes import distributed, keys
from vbayes.progress import Progress


@functools.partial(jax.jit, static_argnames="binarization")
def binarized(images_NxD, key: jax.Array, binarization: str, first_index: int = 0) -> jax.Array:
  """The images as the model reads them (vbayes.data.to_float), image j (counted from
  first_index) binarized with keys.item(keys.stream(key, BINARIZE), j): float32 [N, D].
  One compiled program per shape of the images, whatever first_index."""
  images = jnp.asarray(images_NxD)
  if binarization != "dynamic":
    return data_lib.to_float(key, images, binarization)
  stream = keys.stream(key, keys.BINARIZE)
  image_keys = jax.vmap(lambda j: keys.item(stream, j))(first_index + jnp.arange(len(images)))
  return jax.vmap(lambda k, x: data_lib.to_float(k, x, binarization))(image_keys, images)


def map_over_images(estimate_batch: Callable[[int, jax.Array], dict], images_NxD, *,
                    key: jax.Array, binarization: str, batch_size: int,
                    progress: Progress | None = None, wait_for: str | None = None
                    ) -> dict[str, np.ndarray]:
  """{name: [N, ...]} of estimate_batch over every batch of the images (module doc).
  `progress` is updated after each batch (waiting for output `wait_for` first, so the
  rate is the computation's, not its dispatch)."""
  images = np.asarray(images_NxD)
  n = len(images)
  starts = list(range(0, n, batch_size))
  local, shapes = {}, {}
  for done, i in enumerate(distributed.my_batches(len(starts))):
    batch = images[starts[i]:starts[i] + batch_size]
    if len(batch) < batch_size:  # padded by repetition: one compiled shape
      batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - len(batch), 0)])
    x = binarized(batch, key, binarization, first_index=starts[i])
    values = estimate_batch(i, x)
    for name, value in values.items():
      local.setdefault(name, []).append(value)
      shapes[name] = tuple(np.shape(value))
    if progress is not None:
      if wait_for is not None:
        jax.block_until_ready(values[wait_for])
      progress.update(min(n, (done + 1) * batch_size * jax.process_count()))
  if not shapes:  # this process has no batch (fewer batches than processes): the shapes
    dummy = jax.ShapeDtypeStruct((batch_size, images.shape[1]), jnp.float32)  # all share
    shapes = {name: tuple(v.shape) for name, v in
              jax.eval_shape(lambda x: estimate_batch(0, x), dummy).items()}
  out = {}
  for name in sorted(shapes):
    gathered = distributed.gather_batches(jax.device_get(local.get(name, [])), len(starts),
                                          shapes[name])
    out[name] = np.concatenate([v[:min(batch_size, n - a)] for v, a in zip(gathered, starts)])
  return out
