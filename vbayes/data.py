"""Datasets as whole uint8 arrays, ready to sit on the device.

MNIST-family data comes through tensorflow-datasets exactly as an online user
gets it (vbayes/tfds_arrays.py); offline, tfds builds it from a local folder of the
original files (`manual_dir`, laid out like ../shared/data). 4frames (Mescheder et
al. 2017) is generated.

Images are flattened to [N, D] uint8. "threshold" is applied here; "dynamic" and
"none" keep grey values and are turned into floats inside the jitted step by
`to_float`.
"""

import dataclasses
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vbayes.config import HOLDOUT_IMAGES, DataConfig
from vbayes.datasets import DATA_DIR_ENV, DATASETS, MANUAL_DIR_ENV
from vbayes.errors import DataError
from vbayes.tfds_arrays import cache_path, load_tfds_arrays, save_arrays


@dataclasses.dataclass(frozen=True)
class ImageData:
  """Flattened images of one dataset. Arrays are numpy uint8 [N, D]; labels int32 or None."""
  train: np.ndarray
  test: np.ndarray
  image_shape: tuple[int, int]
  binarization: str
  validation: np.ndarray | None = None
  test_labels: np.ndarray | None = None

  @property
  def data_dim(self) -> int:
    return self.train.shape[1]


def default_data_dir() -> Path:
  return Path(os.environ.get(DATA_DIR_ENV, Path.home() / "tensorflow_datasets"))


def default_manual_dir() -> Path | None:
  value = os.environ.get(MANUAL_DIR_ENV)
  return Path(value) if value else None


def four_frames(copies: int = 250) -> np.ndarray:
  """The four 2x2 binary images with one pixel on, each repeated `copies` times: [4 * copies, 4].

  The data distribution is uniform over the four images, so the best possible
  log-likelihood is -log 4 nats.
  """
  return np.tile(np.eye(4, dtype=np.uint8), (copies, 1))


def to_float(key: jax.Array, x_uint8: jax.Array, binarization: str) -> jax.Array:
  """Stored pixels -> model input, inside jit.

  fixed/threshold: already {0, 1}; dynamic: x ~ Bernoulli(pixel / 255), a fresh
  draw per call; none: pixel / 255 in [0, 1].
  """
  if binarization in ("fixed", "threshold"):
    return x_uint8.astype(jnp.float32)
  grey = x_uint8.astype(jnp.float32) / 255.0
  if binarization == "dynamic":
    return jax.random.bernoulli(key, grey).astype(jnp.float32)
  if binarization == "none":
    return grey
  raise ValueError(f"unknown binarization {binarization!r}")


def load(config: DataConfig, *, data_dir: str | Path | None = None,
         manual_dir: str | Path | None = None, labels: bool = False) -> ImageData:
  """Loads the dataset `config` names, preparing it with tfds the first time.

  Test labels come with mnist and 4frames. binarized_mnist has none in tfds;
  `labels=True` recovers them from mnist's test split (`binarized_mnist_test_labels`).
  `validation` holds the images config.validation names (None for "none"); "holdout"
  takes them off the end of `train`.
  """
  dataset = DATASETS[config.dataset]
  if dataset.tfds_name is None:  # 4frames, the one generated dataset
    return ImageData(train=four_frames(), test=four_frames(1), image_shape=dataset.image_shape,
                     binarization="fixed", test_labels=np.arange(4, dtype=np.int32))
  data_dir = Path(data_dir) if data_dir else default_data_dir()
  manual_dir = Path(manual_dir) if manual_dir else default_manual_dir()
  splits = load_tfds_arrays(config.dataset, data_dir=data_dir, manual_dir=manual_dir)
  images = {name: arr for name, arr in splits.items() if not name.endswith("_labels")}
  if config.binarization == "threshold":
    images = {name: (arr > 127).astype(np.uint8) for name, arr in images.items()}
  test_labels = splits.get("test_labels")
  if test_labels is None and labels:
    test_labels = binarized_mnist_test_labels(images["test"], data_dir=data_dir,
                                              manual_dir=manual_dir)
  train, validation = with_validation(images["train"], images.get("validation"),
                                      config.validation_source)
  return ImageData(train=train, test=images["test"], validation=validation,
                   image_shape=dataset.image_shape, binarization=config.binarization,
                   test_labels=test_labels)


def with_validation(train_NxD: np.ndarray, split_MxD: np.ndarray | None, source: str,
                    holdout: int = HOLDOUT_IMAGES):
  """(training images, validation images or None) for DataConfig.validation_source:
  "split" the dataset's own validation split, "holdout" the last `holdout` training
  images (then left out of training), "none" no validation."""
  if source == "split":
    if split_MxD is None:
      raise DataError("this dataset has no validation split: use validation=holdout or none")
    return train_NxD, split_MxD
  if source == "holdout":
    if len(train_NxD) <= holdout:
      raise DataError(f"{len(train_NxD)} training images are too few to hold out {holdout}: "
                      "use validation=none")
    return train_NxD[:-holdout], train_NxD[-holdout:]
  if source == "none":
    return train_NxD, None
  raise ValueError(f"unknown validation source {source!r}")


def match_labels(binary_NxD: np.ndarray, grey_MxD: np.ndarray, labels_M: np.ndarray,
                 chunk: int = 1000):
  """Labels for binary images drawn once as x ~ Bernoulli(grey / 255) from labelled grey ones.

  Each binary image takes the label of the grey image m under which it is most
  likely, argmax_m sum_d [x_d log p_md + (1 - x_d) log(1 - p_md)] with
  p = clip(grey / 255, 1e-3, 1 - 1e-3). Returns (labels_N, margin_N): the margin
  is the log-likelihood of the best grey image minus that of the best grey image
  with another label, so a large margin means the label is not in doubt (two
  near-identical originals with the same label do not lower it).
  """
  p = np.clip(np.asarray(grey_MxD, np.float32) / 255.0, 1e-3, 1 - 1e-3)
  log_p, log_not_p = np.log(p).T, np.log1p(-p).T  # [D, M]
  classes = np.unique(labels_M)
  labels, margins = [], []
  for start in range(0, len(binary_NxD), chunk):
    x = np.asarray(binary_NxD[start:start + chunk], np.float32)
    score_NxM = x @ log_p + (1.0 - x) @ log_not_p
    best_per_class = np.stack([score_NxM[:, labels_M == c].max(axis=1) for c in classes], 1)
    top2 = np.sort(np.pad(best_per_class, ((0, 0), (1, 0)), constant_values=-np.inf), 1)[:, -2:]
    labels.append(classes[np.argmax(best_per_class, axis=1)])
    margins.append(top2[:, 1] - top2[:, 0])  # inf when all grey images share one label
  return np.concatenate(labels).astype(np.int32), np.concatenate(margins)


def binarized_mnist_test_labels(test_NxD: np.ndarray, *, data_dir: Path,
                                manual_dir: Path | None) -> np.ndarray:
  """Digit labels for binarized MNIST's test split, which tfds ships without them.

  Larochelle's test images are the 10000 MNIST test images, each binarized once
  by a Bernoulli draw; `match_labels` finds each one's original in tfds `mnist`
  (prepared like any dataset here) and takes its label. On the real data every
  label's margin is large (the README gives the numbers) and the class counts
  equal MNIST's. Cached beside the image cache.
  """
  path = cache_path("binarized_mnist_test_labels", data_dir)
  if path.exists():
    try:
      with np.load(path) as f:
        labels = f["labels"]
      if (labels.shape == (len(test_NxD),) and np.issubdtype(labels.dtype, np.integer)
          and labels.min() >= 0 and labels.max() <= 9):
        return labels
      problem = f"labels of shape {labels.shape} and dtype {labels.dtype}"
    except Exception as e:  # pylint: disable=broad-except
      problem = f"it cannot be read ({type(e).__name__}: {e})"
    print(f"vbayes: rebuilding the cache {path}: {problem}", file=sys.stderr)
  mnist = load_tfds_arrays("mnist", data_dir=data_dir, manual_dir=manual_dir)
  labels, margins = match_labels(test_NxD, mnist["test"], mnist["test_labels"])
  save_arrays(path, {"labels": labels, "margins": margins})
  return labels
