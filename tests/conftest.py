"""Shared fixtures. Tests run on the JAX CPU backend and never touch the network."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

from tests import linear_gaussian  # pylint: disable=g-import-not-at-top
from vbayes import data as data_lib  # pylint: disable=g-import-not-at-top


@pytest.fixture
def lg_model():
  return linear_gaussian.make()


@pytest.fixture(scope="session")
def tiny_tfds(tmp_path_factory):
  """tfds caches as the figures need them: binarized_mnist (no labels) whose test
  images are Bernoulli draws of mnist's labelled grey test images, in another order."""
  root = tmp_path_factory.mktemp("tfds")
  rng = np.random.default_rng(0)
  grey = (rng.random((150, 784)) ** 4 * 255).astype(np.uint8)
  labels = np.arange(150, dtype=np.int32) % 10
  data_lib.save_arrays(data_lib.cache_path("mnist", root),
                       {"train": grey[:10], "test": grey, "test_labels": labels})
  order = rng.permutation(150)
  binary = lambda g: (rng.random(g.shape) < g / 255.0).astype(np.uint8)
  data_lib.save_arrays(data_lib.cache_path("binarized_mnist", root), {
      "train": binary(np.resize(grey, (200, 784))), "validation": binary(grey[:20]),
      "test": binary(grey[order])})
  return root
