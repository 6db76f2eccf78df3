"""Dataset splits as uint8 arrays from tensorflow-datasets, kept in a .npz cache.

tfds prepares a dataset once, online as any user does or offline from a folder of
the original files (`manual_dir`, laid out like ../shared/data, each file checked
against its published size and SHA-256); its splits are then also written as one .npz
beside the tfds files (`cache_path`), which loads in well under a second and is
checked (`check_arrays`) before it is used.
"""

import gzip
import hashlib
import os
import socket
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

from vbayes.datasets import DATASETS, MANUAL_DIR_ENV
from vbayes.errors import DataError


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
