"""Datasets as whole uint8 arrays, ready to sit on the device.

MNIST-family data comes through tensorflow-datasets exactly as an online user
gets it; offline, tfds builds it from a local folder of the original files
(`manual_dir`, laid out like ../shared/data). After the first preparation the
splits are also kept as one .npz beside the tfds files, which loads in well
under a second. 4frames (Mescheder et al. 2017) is generated.

Images are flattened to [N, D] uint8. "threshold" is applied here; "dynamic" and
"none" keep grey values and are turned into floats inside the jitted step by
`to_float`.
"""

import dataclasses
import gzip
import hashlib
import os
import socket
import sys
import tempfile
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vbayes.config import HOLDOUT_IMAGES, DataConfig
from vbayes.datasets import DATASETS
from vbayes.errors import UserError

MANUAL_DIR_ENV = "VBAYES_MANUAL_DIR"
DATA_DIR_ENV = "TFDS_DATA_DIR"

class DataError(UserError):
  """Data that cannot be had: the message says what to do."""


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


def cache_path(name: str, data_dir: Path) -> Path:
  return Path(data_dir) / "vbayes_arrays" / f"{name}.npz"


def save_arrays(path: Path, arrays: dict[str, np.ndarray]):
  """Writes the .npz atomically, through a temporary file of its own (a reader never sees
  half a file, and two processes writing the same cache do not collide)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp.npz")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
    _usual_permissions(tmp)
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


def _usual_permissions(path):
  """mkstemp makes files readable by their owner alone; give them the umask's permissions
  (a data dir may be shared)."""
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(path, 0o666 & ~umask)


def check_arrays(name: str, arrays: dict[str, np.ndarray]) -> str | None:
  """What is wrong with a dataset's arrays, or None: the train and test splits must be
  uint8 [N, D] (binary for a binary dataset), labels int [N] of their split's length."""
  for split in ("train", "test"):
    if split not in arrays:
      return f"it lacks the {split} split"
  for split, arr in arrays.items():
    if split.endswith("_labels"):
      images = arrays.get(split.removesuffix("_labels"))
      if arr.ndim != 1 or images is None or len(arr) != len(images):
        return f"{split} has shape {arr.shape}, not that of its split's labels"
      continue
    dim = DATASETS[name].data_dim
    if arr.ndim != 2 or arr.shape[1] != dim or arr.dtype != np.uint8:
      return f"split {split} is {arr.dtype} {list(arr.shape)}, not uint8 [N, {dim}]"
    if DATASETS[name].binary and arr.size and arr.max() > 1:
      return f"split {split} has pixel values up to {arr.max()}; {name} is binary"
  return None


def load_tfds_arrays(name: str, *, data_dir: Path, manual_dir: Path | None) -> dict[str, np.ndarray]:
  """{"train": uint8 [N, D], "test": ..., ["validation"], ["<split>_labels"]}.

  A cache that cannot be read or fails `check_arrays` is rebuilt from tfds.
  """
  path = cache_path(name, data_dir)
  if path.exists():
    try:
      with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
      problem = check_arrays(name, arrays)
    except Exception as e:  # pylint: disable=broad-except
      problem = f"it cannot be read ({type(e).__name__}: {e})"
    if problem is None:
      return arrays
    print(f"vbayes: rebuilding the cache {path} from tfds: {problem}", file=sys.stderr)
  arrays = _read_tfds(name, data_dir=data_dir, manual_dir=manual_dir)
  problem = check_arrays(name, arrays)
  if problem:
    raise DataError(f"tfds dataset {name!r} in {data_dir} is not as expected ({problem}); "
                    f"delete {Path(data_dir) / name} and re-run to prepare it again")
  save_arrays(path, arrays)
  return arrays


def _read_tfds(name, *, data_dir: Path, manual_dir: Path | None):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = tfds.builder(DATASETS[name].tfds_name, data_dir=str(data_dir),
                         file_format="array_record")
  if not builder.is_prepared():
    _prepare(builder, name, data_dir=data_dir, manual_dir=manual_dir)
  arrays = {}
  try:
    for split, source in builder.as_data_source().items():
      records = source.__getitems__(list(range(len(source))))
      arrays[split] = np.stack([r["image"].reshape(-1) for r in records]).astype(np.uint8)
      if "label" in records[0]:
        arrays[f"{split}_labels"] = np.array([r["label"] for r in records], np.int32)
  except Exception as e:  # tfds and array_record raise many types for a damaged file
    reason = (str(e).splitlines() or [type(e).__name__])[0][:160]
    raise DataError(f"the prepared tfds dataset {name!r} in {builder.data_dir} cannot be "
                    f"read ({type(e).__name__}: {reason}); delete {builder.data_dir} and re-run "
                    "to prepare it again") from e
  return arrays


def _prepare(builder, name: str, *, data_dir: Path, manual_dir: Path | None):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  if manual_dir is not None:
    tfds_manual_dir = _manual_files(name, Path(manual_dir), data_dir)
    config = tfds.download.DownloadConfig(manual_dir=str(tfds_manual_dir))
  else:
    host = DATASETS[name].download_host
    if not _reachable(host):
      raise DataError(
          f"dataset {name!r} is not prepared in {data_dir} and {host} cannot be reached. "
          f"Offline, pass --manual_dir (or set {MANUAL_DIR_ENV}) to a folder laid out like "
          f"../shared/data, holding {name}/ with {', '.join(DATASETS[name].manual_files)}.")
    config = tfds.download.DownloadConfig()
  print(f"vbayes: preparing tfds dataset {name!r} in {data_dir} (once)")
  builder.download_and_prepare(download_config=config)


def _manual_files(name: str, manual_dir: Path, data_dir: Path) -> Path:
  """Checks `manual_dir/name/` against the published checksums and returns the folder
  tfds should read.

  tfds wants binarized MNIST's .amat files uncompressed: they are unpacked into
  the data dir, never into manual_dir (which may be read-only), and an unpacked file
  left there earlier is used only if it matches its published checksum.
  """
  dataset = DATASETS[name]
  folder = manual_dir / name
  missing = [f for f in dataset.manual_files if not (folder / f).is_file()]
  if missing:
    raise DataError(
        f"manual dir {folder} lacks {', '.join(missing)}: it must hold the original "
        f"{name} files ({', '.join(dataset.manual_files)}), as ../shared/data/{name}/ does.")
  if not dataset.unpack_manual_files:
    for f in dataset.manual_files:
      if not matches_published(folder / f, *dataset.published_file(f)):
        raise DataError(f"{folder / f} does not match the published checksum of {name}'s "
                        f"{f} (it is truncated or another file); put the original {f} "
                        f"there, as ../shared/data/{name}/ holds it")
    return folder
  unpacked = data_dir / "vbayes_manual" / name
  unpacked.mkdir(parents=True, exist_ok=True)
  for f in dataset.manual_files:
    target = unpacked / f.removesuffix(".gz")
    published = dataset.published_file(target.name)
    if target.exists() and matches_published(target, *published):
      continue
    fd, tmp = tempfile.mkstemp(dir=unpacked, prefix=target.name + ".", suffix=".partial")
    try:
      with os.fdopen(fd, "wb") as dst, gzip.open(folder / f) as src:
        while True:
          try:
            block = src.read(1 << 20)
          except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{folder / f} cannot be unpacked ({e}): it is truncated or not "
                            f"gzip; put the original {f} there, as ../shared/data/{name}/ "
                            "holds it") from e
          if not block:
            break
          try:
            dst.write(block)
          except OSError as e:
            raise DataError(f"cannot write {target} into the data dir ({e.strerror}); free "
                            "space there or choose another --data_dir") from e
      if not matches_published(Path(tmp), *published):
        raise DataError(f"{folder / f} does not unpack to the published {target.name} (its "
                        "checksum differs); put the original Larochelle file, gzipped, there, "
                        f"as ../shared/data/{name}/ holds it")
      _usual_permissions(tmp)
      os.replace(tmp, target)
    finally:
      Path(tmp).unlink(missing_ok=True)
  return unpacked


def matches_published(path: Path, size: int, sha256: str) -> bool:
  """Whether the file has the published size and SHA-256."""
  if path.stat().st_size != size:
    return False
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest() == sha256


def _reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
  try:
    socket.create_connection((host, port), timeout=timeout).close()
    return True
  except OSError:
    return False
