"""Where the tests find the repository, its tests and the offline data."""

import os
from pathlib import Path

from vbayes import datasets

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
# The original MNIST files, laid out as tfds' manual dir wants them (../shared/data).
SHARED_DATA = Path(os.environ.get(datasets.MANUAL_DIR_ENV, REPO.parent / "shared" / "data"))
HAVE_SHARED_DATA = (SHARED_DATA / "binarized_mnist").is_dir()
