r"""The backend check: the same numbers on this backend as on the CPU, and its throughput.

    python bench/backend_check.py                    # on a GPU or TPU machine (or a CPU)
    python bench/backend_check.py --write_reference  # on the CPU: record the reference
    python bench/backend_check.py --smoke            # a tiny size: that it runs

Evaluates every checkpoint it finds, the literature card's shipped ones
(experiments/checkpoints/<row>/) and bench/backend_check/gated_vampprior (a small gated
VampPrior VAE trained for this check), on the binary images of
bench/backend_check/images.npz (drawn once from that model: no dataset needed), in
batches of BATCH images with fixed keys and a fixed chunk of samples: each image's
log p(x) by importance sampling with K samples from q(z|x), and the prior's log p(z) at fixed points z ~ N(0, I) (the
VampPrior's mixture is the density most sensitive to reduced precision). Compares them
with the CPU values in bench/backend_check/reference.json (goal: every per-image
difference within TOLERANCE nats), then times the training step of a 784-500-500-50 VAE
(batch 100, vbayes' own jitted chunk) against the float32 matmul peak measured beside
it. Last line: one JSON object: backend, device, per checkpoint the mean NLL, its
reference and the largest per-image differences, max_abs_diff, within_tolerance, and
the throughput.
"""

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import common  # bench/common.py, beside this script

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from vbayes import config as config_lib, precision  # pylint: disable=wrong-import-position
from vbayes.evaluation import importance_sampling as is_lib  # pylint: disable=wrong-import-position
from vbayes.models import build  # pylint: disable=wrong-import-position
from vbayes.training import params_npz  # pylint: disable=wrong-import-position
from vbayes.models.networks import mlp

HERE = Path(__file__).resolve().parent / "backend_check"
IMAGES_FILE, REFERENCE_FILE = HERE / "images.npz", HERE / "reference.json"
K, BATCH, TOLERANCE, SEED = 1000, 5, 0.01, 0

flags.DEFINE_bool("write_reference", False, "Record this backend's values as the reference "
                  "(do it on the CPU).")
flags.DEFINE_bool("smoke", False, "The first batch of images and the small checkpoint only, "
                  "and a tiny training benchmark: that the script runs.")
flags.DEFINE_integer("calls", 3, "Timed calls of each throughput timer (the best counts).")
FLAGS = flags.FLAGS


def checkpoints(smoke: bool) -> dict[str, Path]:
  """{name: folder} of every checkpoint to check (the small one alone for --smoke)."""
  found = {"gated_vampprior": HERE / "gated_vampprior"}
  if not smoke:
    for folder in sorted((REPO / "experiments" / "checkpoints").glob("*")):
      if (folder / params_npz.PARAMS_FILE).is_file():
        found[folder.name] = folder
  return found


def load_images() -> np.ndarray:
  with np.load(IMAGES_FILE) as f:
    return np.unpackbits(f["packed"], axis=1, count=int(f["pixels"])).astype(np.float32)


def values(folder: Path, images_NxD: np.ndarray, batches: int) -> dict:
  """Per image: log p(x) by IS (k=K, batch i's key fold_in(key(SEED), i)) and log p(z)
  at the i-th fixed z ~ N(0, I) (key(SEED + 1))."""
  config, params = params_npz.load_shipped(folder)
  model = build(config.model)
  key = jax.random.key(SEED)
  log_px = []
  for i in range(batches):
    x = jnp.asarray(images_NxD[i * BATCH:(i + 1) * BATCH])
    q = is_lib.proposal_for(params, jax.random.fold_in(key, 2 * i), x, model=model,
                            proposal_samples=1000)
    lp, _ = is_lib.importance_sampled_log_likelihood(
        params, jax.random.fold_in(key, 2 * i + 1), x, model=model, k=K,
        chunk=min(K, 200), proposal=q)
    log_px.append(np.asarray(lp))
  z = jax.random.normal(jax.random.key(SEED + 1), (batches * BATCH, model.latent_dim))
  log_prior = jax.jit(precision.estimates(model.log_prior))(params, z)
  return {"log_px": np.concatenate(log_px).tolist(), "log_prior": np.asarray(log_prior).tolist()}


def throughput(smoke: bool) -> dict:
  """Steps per second of the 784-500-500-50 VAE's training chunk and its fraction of the
  matmul peak timed in turn with it (bench/common.py)."""
  sizes = (784, 32, 4) if smoke else (784, 500, 500, 50)
  config = config_lib.TrainConfig(
      model=config_lib.ModelConfig(latent_dim=sizes[-1],
                                   network=mlp.Config(hidden_sizes=sizes[1:-1])),
      batch_size=10 if smoke else 100, steps_per_call=10 if smoke else 500)
  images = jnp.asarray((np.random.default_rng(0).random((500 * config.batch_size, 784)) < 0.13)
                       .astype(np.uint8))
  peaks = common.peak_timers(common.SMOKE_PEAK_SIZES) if smoke else common.peak_timers()
  rates = common.rates({"train": common.training_timer(config, images, steps_per_epoch=500),
                        **peaks}, 1 if smoke else FLAGS.calls)
  peak = common.peak_gflops(rates)
  # The encoder's last layer gives L means and L log-variances; the decoder's input
  # gradient (with respect to z) is part of the reparameterized encoder gradient.
  encoder, decoder = (*sizes[:-1], 2 * sizes[-1]), (sizes[-1], *sizes[1:-1][::-1], 784)
  flops = (common.mlp_train_flops(encoder, config.batch_size)
           + common.mlp_train_flops(decoder, config.batch_size, input_gradient=True))
  return {"train_steps_per_s": common.significant(rates["train"]),
          "peak_gflops": common.significant(peak),
          "train_fraction_of_peak": common.significant(rates["train"] * flops / 1e9 / peak)}


def main(argv):
  del argv
  jax.config.update("jax_default_matmul_precision", "highest")  # the peak and the step alike
  images = load_images()
  batches = 1 if FLAGS.smoke else len(images) // BATCH
  reference = json.loads(REFERENCE_FILE.read_text()) if REFERENCE_FILE.is_file() else {}
  start = time.perf_counter()
  measured = {name: values(folder, images, batches)
              for name, folder in checkpoints(FLAGS.smoke).items()}
  seconds = time.perf_counter() - start
  if FLAGS.write_reference:
    if jax.default_backend() != "cpu":
      raise SystemExit("error: write the reference on the CPU (JAX_PLATFORMS=cpu)")
    reference = {"backend": "cpu", "jax": jax.__version__, "k": K, "checkpoints": measured}
    REFERENCE_FILE.write_text(json.dumps(reference, indent=1) + "\n")
  checks, worst = {}, 0.0
  for name, got in measured.items():
    ref = reference.get("checkpoints", {}).get(name)
    if ref is None:
      checks[name] = {"nll": float(-np.mean(got["log_px"])), "reference": None}
      continue
    n = len(got["log_px"])
    diff_px = np.abs(np.subtract(got["log_px"], ref["log_px"][:n]))
    diff_prior = np.abs(np.subtract(got["log_prior"], ref["log_prior"][:n]))
    worst = max(worst, float(diff_px.max()), float(diff_prior.max()))
    checks[name] = {"nll": float(-np.mean(got["log_px"])),
                    "reference_nll": float(-np.mean(ref["log_px"][:n])), "images": n,
                    "max_abs_diff_log_px": float(diff_px.max()),
                    "max_abs_diff_log_prior": float(diff_prior.max())}
  missing = sorted(name for name, c in checks.items() if c.get("reference", 0) is None)
  out = {"smoke": FLAGS.smoke, "backend": jax.default_backend(),
         "device": jax.devices()[0].device_kind,
         "jax": jax.__version__, "checks": checks, "max_abs_diff": worst,
         "tolerance": TOLERANCE, "within_tolerance": worst <= TOLERANCE and not missing,
         "without_reference": missing,
         "evaluation_images_per_s": common.significant(batches * BATCH * len(measured)
                                                       / seconds),
         **throughput(FLAGS.smoke)}
  print(json.dumps(out))


if __name__ == "__main__":
  app.run(main)
