"""A model's parameters as one .npz file that numpy alone reads: one array per leaf of
the parameter pytree, named by its path ("decoder/layer_0/w").

    np.load("params.npz")["encoder/layer_0/w"]           # numpy alone
    params = params_npz.load(path, like=model.init(key))  # the pytree, checked against
                                                          # the model's own structure

A shipped checkpoint (experiments/checkpoints/<row>/) is a folder with the run's
config.json, its parameters as PARAMS_FILE, and REFERENCE_FILE: the numbers the run
reported and a quick check (`reference_check`) that a test recomputes.
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vbayes.config import TrainConfig
from vbayes.errors import UserError
from vbayes.evaluation import importance_sampling as evaluate_lib
from vbayes.models import build
from vbayes.training import workdir as workdir_lib
from vbayes.training.workdir import CONFIG_FILE

PARAMS_FILE = "params.npz"
REFERENCE_FILE = "reference.json"
# The quick check: IS with k = 100 on the first 100 test images, binarized and sampled
# with these keys (jax.random.key(REFERENCE_SEED)).
REFERENCE_IMAGES, REFERENCE_K, REFERENCE_SEED = 100, 100, 0


class ParamsFileError(UserError):
  """A parameters file that is missing, unreadable or does not fit the model."""


def leaf_name(path) -> str:
  """"decoder/layer_0/w" for the path of jax.tree_util.tree_flatten_with_path."""
  parts = []
  for entry in path:
    if isinstance(entry, jax.tree_util.DictKey):
      parts.append(str(entry.key))
    elif isinstance(entry, jax.tree_util.SequenceKey):
      parts.append(str(entry.idx))
    else:
      parts.append(str(getattr(entry, "name", entry)))
  return "/".join(parts)


def save(params, path: str | Path):
  """Writes every leaf of `params` as a float array named by its path, atomically (a
  temporary file renamed into place: an existing file is never left half-written)."""
  path = Path(path)
  arrays = {leaf_name(p): np.asarray(jax.device_get(leaf))
            for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
  bad = sorted(name for name, a in arrays.items() if not np.all(np.isfinite(a)))
  if bad:
    raise ParamsFileError(f"parameters {', '.join(bad)} are not finite; nothing was written")
  workdir_lib.replace_atomically(path, lambda f: np.savez_compressed(f, **arrays))


def load(path: str | Path, like):
  """The parameters in `path` as a pytree of the structure of `like` (e.g. model.init's),
  each leaf checked for its name and shape; ParamsFileError names what does not fit."""
  path = Path(path)
  try:
    with np.load(path) as f:
      arrays = {name: f[name] for name in f.files}
  except (OSError, ValueError, EOFError) as e:
    raise ParamsFileError(f"{path} cannot be read as a .npz of parameters ({e})") from None
  leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
  names = [leaf_name(p) for p, _ in leaves]
  missing, extra = sorted(set(names) - set(arrays)), sorted(set(arrays) - set(names))
  if missing or extra:
    raise ParamsFileError(
        f"{path} does not hold this model's parameters: "
        + "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                      f"unknown {', '.join(extra)}" if extra else "") if part)
        + ". Is config.json beside it the one it was trained with?")
  out = []
  for name, (_, leaf) in zip(names, leaves):
    array = arrays[name]
    if array.shape != tuple(leaf.shape):
      raise ParamsFileError(f"{path}: {name} has shape {array.shape}, the model's is "
                            f"{tuple(leaf.shape)}")
    out.append(jnp.asarray(array, leaf.dtype))
  return jax.tree_util.tree_unflatten(treedef, out)


def load_shipped(folder: str | Path):
  """(config, params) of a shipped checkpoint: its config.json and PARAMS_FILE, read
  against the structure of the model the config describes."""
  folder = Path(folder)
  config = TrainConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
  like = build(config.model).init(jax.random.key(0))
  return config, load(folder / PARAMS_FILE, like)


def reference_check(params, config, test_images_NxD: np.ndarray, binarization: str) -> dict:
  """The quick check of a shipped checkpoint: -log p(x) by importance sampling with
  k = REFERENCE_K on the first REFERENCE_IMAGES test images, mean and standard error,
  with fixed keys (binarization and samples from jax.random.key(REFERENCE_SEED)) and a
  fixed chunk of samples (the draws depend on it; the default follows the device's
  memory)."""
  key = jax.random.key(REFERENCE_SEED)
  images = np.asarray(test_images_NxD[:REFERENCE_IMAGES])
  results = evaluate_lib.evaluate(params, key, images, model=config.model,
                                  binarization=binarization, k=REFERENCE_K,
                                  batch_size=REFERENCE_IMAGES,
                                  rows_per_chunk=evaluate_lib.MAX_ROWS_PER_CHUNK)
  return {"images": len(images), "k": REFERENCE_K, "seed": REFERENCE_SEED,
          "nll": results["test_nll"], "nll_stderr": results["test_nll_stderr"]}


def write_reference(folder: Path, reference: dict):
  (folder / REFERENCE_FILE).write_text(json.dumps(reference, indent=2) + "\n")


def read_reference(folder: Path) -> dict:
  return json.loads((folder / REFERENCE_FILE).read_text())
