"""tfds data dirs whose vbayes caches hold tiny generated images: what the command line
reads as binarized_mnist or mnist, without tfds or the network."""

from pathlib import Path

import numpy as np

from vbayes import tfds_arrays


def write_tiny_tfds(root: Path) -> Path:
  """binarized_mnist (no labels) whose test images are Bernoulli draws of mnist's
  labelled grey test images, in another order: what the figures need."""
  rng = np.random.default_rng(0)
  grey = (rng.random((150, 784)) ** 4 * 255).astype(np.uint8)
  labels = np.arange(150, dtype=np.int32) % 10
  tfds_arrays.save_arrays(tfds_arrays.cache_path("mnist", root),
                          {"train": grey[:10], "test": grey, "test_labels": labels})
  order = rng.permutation(150)
  binary = lambda g: (rng.random(g.shape) < g / 255.0).astype(np.uint8)
  tfds_arrays.save_arrays(tfds_arrays.cache_path("binarized_mnist", root), {
      "train": binary(np.resize(grey, (200, 784))), "validation": binary(grey[:20]),
      "test": binary(grey[order])})
  return root


def fake_mnist(folder: Path) -> Path:
  """binarized_mnist of tiny random binary images: 400 train, 50 validation, 30 test."""
  rng = np.random.default_rng(0)
  arrays = {split: (rng.random((n, 784)) < 0.13).astype(np.uint8)
            for split, n in (("train", 400), ("validation", 50), ("test", 30))}
  tfds_arrays.save_arrays(tfds_arrays.cache_path("binarized_mnist", folder), arrays)
  return folder


def grey_mnist(folder: Path) -> Path:
  """mnist of tiny random grey images with labels: 200 train, 20 test."""
  rng = np.random.default_rng(1)
  arrays = {split: rng.integers(0, 256, size=(n, 784)).astype(np.uint8)
            for split, n in (("train", 200), ("test", 20))}
  arrays["test_labels"] = rng.integers(0, 10, size=20).astype(np.int32)
  tfds_arrays.save_arrays(tfds_arrays.cache_path("mnist", folder), arrays)
  return folder
