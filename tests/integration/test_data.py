"""Data loading: generated data, binarization, the offline errors, the cache, and
(when ../shared/data is there) tfds preparation from the original files."""

import gzip
import math
import re
import shutil
import socket
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes import datasets
from vbayes import tfds_arrays
from tests.helpers.paths import HAVE_SHARED_DATA, SHARED_DATA



@pytest.fixture(autouse=True)
def no_network(monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError(f"a test tried to reach the network: {args}")
  monkeypatch.setattr(socket, "create_connection", refuse)


def test_four_frames_is_uniform_over_four_one_hot_images():
  x = data_lib.four_frames(5)
  assert x.shape == (20, 4) and x.dtype == np.uint8
  assert np.all(x.sum(axis=1) == 1)
  np.testing.assert_array_equal(x.sum(axis=0), [5, 5, 5, 5])
  loaded = data_lib.load(config_lib.DataConfig(dataset="4frames"))
  assert loaded.image_shape == (2, 2) and loaded.data_dim == 4


def test_dynamic_binarization_draws_bernoulli_of_grey_level():
  grey = jnp.full((200, 784), 51, jnp.uint8)  # p = 0.2
  x = data_lib.to_float(jax.random.key(0), grey, "dynamic")
  assert set(np.unique(np.asarray(x))) == {0.0, 1.0}
  n, p = x.size, 0.2
  assert abs(float(x.mean()) - p) < 4 * math.sqrt(p * (1 - p) / n)
  y = data_lib.to_float(jax.random.key(1), grey, "dynamic")
  assert not np.array_equal(x, y)  # a fresh draw for another key


def test_grey_and_threshold_values():
  pixels = jnp.array([[0, 127, 128, 255]], jnp.uint8)
  np.testing.assert_allclose(data_lib.to_float(None, pixels, "none"), pixels / 255.0)
  np.testing.assert_array_equal(np.asarray(pixels > 127, np.float32),
                                data_lib.to_float(None, (pixels > 127).astype(np.uint8),
                                                  "threshold"))


def test_missing_manual_files_give_one_clear_error(tmp_path):
  (tmp_path / "manual" / "binarized_mnist").mkdir(parents=True)
  with pytest.raises(data_lib.DataError, match="binarized_mnist_test.amat.gz"):
    data_lib.load(config_lib.DataConfig(dataset="binarized_mnist"), data_dir=tmp_path / "tfds",
                  manual_dir=tmp_path / "manual")


def test_offline_without_manual_dir_says_what_to_do(tmp_path, monkeypatch):
  monkeypatch.delenv(data_lib.MANUAL_DIR_ENV, raising=False)
  monkeypatch.setattr(tfds_arrays, "_reachable", lambda host: False)
  with pytest.raises(data_lib.DataError, match="--manual_dir"):
    data_lib.load(config_lib.DataConfig(dataset="mnist", binarization="dynamic"),
                  data_dir=tmp_path / "tfds")


def test_cached_arrays_load_without_tfds(tmp_path, monkeypatch):
  arrays = {"train": np.full((3, 784), 200, np.uint8), "test": np.zeros((2, 784), np.uint8),
            "test_labels": np.array([1, 2], np.int32)}
  tfds_arrays.save_arrays(tfds_arrays.cache_path("mnist", tmp_path), arrays)
  monkeypatch.setattr(tfds_arrays, "_read_tfds", lambda *a, **k: pytest.fail("tfds was called"))
  loaded = data_lib.load(config_lib.DataConfig(dataset="mnist", binarization="threshold"),
                         data_dir=tmp_path)
  np.testing.assert_array_equal(loaded.train, np.ones((3, 784), np.uint8))
  np.testing.assert_array_equal(loaded.test_labels, [1, 2])


def test_match_labels_finds_the_original_of_each_binarized_image():
  rng = np.random.default_rng(0)
  grey = (rng.random((300, 784)) ** 3 * 255).astype(np.uint8)  # mostly dark, like digits
  labels = rng.integers(0, 10, size=300).astype(np.int32)
  order = rng.permutation(300)[:120]
  binary = (rng.random((120, 784)) < grey[order] / 255.0).astype(np.uint8)
  got, margin = data_lib.match_labels(binary, grey, labels, chunk=50)
  np.testing.assert_array_equal(got, labels[order])
  assert got.dtype == np.int32 and margin.shape == (120,) and np.all(margin > 0)


def _fill_manual_dir(folder: Path, names, content: bytes, gzipped: bool = True):
  """Writes every named file into folder, gzipped (or raw) `content`."""
  folder.mkdir(parents=True, exist_ok=True)
  for name in names:
    if gzipped:
      with gzip.open(folder / name, "wb") as f:
        f.write(content)
    else:
      (folder / name).write_bytes(content)


def test_wrong_or_truncated_files_in_the_manual_dir_are_named(tmp_path):
  manual = tmp_path / "manual"
  _fill_manual_dir(manual / "mnist", datasets.MNIST.manual_files, b"not mnist")
  with pytest.raises(data_lib.DataError, match="train-images-idx3-ubyte.gz does not match the "
                     "published checksum.*put the original train-images-idx3-ubyte.gz there"):
    tfds_arrays._manual_files("mnist", manual, tmp_path / "tfds")  # pylint: disable=protected-access
  binarized = manual / "binarized_mnist"
  _fill_manual_dir(binarized, datasets.BINARIZED_MNIST.manual_files, b"\x1f\x8b truncated",
                   gzipped=False)
  with pytest.raises(data_lib.DataError, match="binarized_mnist_train.amat.gz cannot be unpacked"):
    tfds_arrays._manual_files("binarized_mnist", manual, tmp_path / "tfds")  # pylint: disable=protected-access
  _fill_manual_dir(binarized, datasets.BINARIZED_MNIST.manual_files, b"0 1 0\n")
  with pytest.raises(data_lib.DataError, match="does not unpack to the published "
                     "binarized_mnist_train.amat"):
    tfds_arrays._manual_files("binarized_mnist", manual, tmp_path / "tfds")  # pylint: disable=protected-access
  unpacked = tmp_path / "tfds" / "vbayes_manual" / "binarized_mnist"
  assert list(unpacked.iterdir()) == []  # nothing half-written or wrong is left behind


GOOD = {"train": np.zeros((3, 784), np.uint8), "validation": np.zeros((2, 784), np.uint8),
        "test": np.ones((2, 784), np.uint8)}


@pytest.mark.parametrize("bad, problem", [
    ({"train": GOOD["train"]}, "lacks the test split"),
    ({**GOOD, "test": np.ones((2, 28, 28), np.uint8)}, "not uint8 \\[N, 784\\]"),
    ({**GOOD, "test": np.ones((2, 784), np.float32)}, "not uint8 \\[N, 784\\]"),
    ({**GOOD, "test": np.full((2, 784), 255, np.uint8)}, "pixel values up to 255"),
])
def test_a_bad_cache_is_rebuilt_and_bad_data_refused(tmp_path, monkeypatch, capsys, bad, problem):
  path = tfds_arrays.cache_path("binarized_mnist", tmp_path)
  tfds_arrays.save_arrays(path, bad)
  monkeypatch.setattr(tfds_arrays, "_read_tfds", lambda *a, **k: dict(GOOD))
  loaded = data_lib.load(config_lib.DataConfig(dataset="binarized_mnist"), data_dir=tmp_path)
  np.testing.assert_array_equal(loaded.test, GOOD["test"])
  err = capsys.readouterr().err
  assert f"rebuilding the cache {path}" in err and re.search(problem, err)
  with np.load(path) as f:  # rewritten
    np.testing.assert_array_equal(f["test"], GOOD["test"])
  # tfds itself holding such arrays is refused with what to do.
  tfds_arrays.save_arrays(path, bad)
  monkeypatch.setattr(tfds_arrays, "_read_tfds", lambda *a, **k: dict(bad))
  with pytest.raises(data_lib.DataError, match=f"not as expected.*{problem}.*delete"):
    data_lib.load(config_lib.DataConfig(dataset="binarized_mnist"), data_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_SHARED_DATA,
                    reason=f"no offline MNIST files at {SHARED_DATA}")
def test_a_stale_unpacked_file_is_unpacked_again(tmp_path):
  unpacked = tmp_path / "vbayes_manual" / "binarized_mnist"
  unpacked.mkdir(parents=True)
  (unpacked / "binarized_mnist_test.amat").write_text("0 1\n")  # left by a bad manual dir
  tfds_arrays._manual_files("binarized_mnist", SHARED_DATA, tmp_path)  # pylint: disable=protected-access
  for name, size, sha in datasets.BINARIZED_MNIST.published:
    assert tfds_arrays.matches_published(unpacked / name, size, sha)


@pytest.mark.slow
def test_tfds_prepares_both_datasets_offline_from_the_original_files(
    tfds_prepared_from_original_files, monkeypatch, tmp_path):
  """tfds prepared both datasets from the original files with the network refused
  (tests/integration/conftest.py); vbayes cached them."""
  own_tmp_path, tmp_path = tmp_path, tfds_prepared_from_original_files
  for name, version in (("binarized_mnist", "1.0.0"), ("mnist", "3.0.1")):
    assert (tmp_path / name / version / "dataset_info.json").is_file()
  bm = data_lib.load(config_lib.DataConfig(dataset="binarized_mnist"), data_dir=tmp_path)
  assert bm.train.shape == (50000, 784) and bm.validation.shape == (10000, 784)
  assert bm.test.shape == (10000, 784)
  assert abs(bm.train.mean() - 0.13056) < 5e-5 and abs(bm.test.mean() - 0.13251) < 5e-5
  mnist = data_lib.load(config_lib.DataConfig(dataset="mnist", binarization="dynamic"),
                        data_dir=tmp_path)
  assert mnist.train.shape == (60000, 784) and mnist.test.shape == (10000, 784)
  assert mnist.train.max() == 255
  np.testing.assert_array_equal(np.bincount(mnist.test_labels),
                                [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
  # binarized_mnist's test labels, recovered from mnist's test split: MNIST's class
  # counts, and no label in doubt (every margin is tens of nats).
  labelled = data_lib.load(config_lib.DataConfig(dataset="binarized_mnist"), data_dir=tmp_path,
                           labels=True)
  np.testing.assert_array_equal(np.bincount(labelled.test_labels), np.bincount(mnist.test_labels))
  with np.load(tfds_arrays.cache_path("binarized_mnist_test_labels", tmp_path)) as f:
    assert f["margins"].min() > 20
  # The second load reads the cache, not tfds.
  monkeypatch.setattr(tfds_arrays, "_read_tfds", lambda *a, **k: pytest.fail("tfds was called"))
  again = data_lib.load(config_lib.DataConfig(dataset="binarized_mnist"), data_dir=tmp_path)
  np.testing.assert_array_equal(again.test, bm.test)
  # A damaged array_record file of a prepared dataset is refused with what to do (on a
  # copy: the prepared data dir is the session's, read by other tests after this one).
  damaged = own_tmp_path / "data"
  shutil.copytree(tmp_path / "binarized_mnist", damaged / "binarized_mnist")
  records = sorted((damaged / "binarized_mnist").rglob("*test.array_record*"))
  assert records
  records[0].write_bytes(records[0].read_bytes()[:1000])
  monkeypatch.undo()
  with pytest.raises(data_lib.DataError, match="cannot be read.*delete .*binarized_mnist"):
    data_lib.load(config_lib.DataConfig(dataset="binarized_mnist"), data_dir=damaged)
