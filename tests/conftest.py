"""Shared fixtures. Tests run on the JAX CPU backend and never touch the network."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # pylint: disable=g-import-not-at-top

from tests import linear_gaussian  # pylint: disable=g-import-not-at-top


@pytest.fixture
def lg_model():
  return linear_gaussian.make()
