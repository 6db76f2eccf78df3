"""A finished run's test metrics, per-image log p(x) and figures."""

import math
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from vbayes import data as data_lib
from vbayes import distributed, keys, precision
from vbayes.config import TrainConfig
from vbayes.errors import UserError
from vbayes.evaluation import importance_sampling as evaluate_lib
from vbayes.evaluation import over_images
from vbayes.models import Model
from vbayes.plots import images as image_plots, latents as latent_plots
from vbayes.training import workdir as workdir_lib

# Every test image's log p(x) estimate of the run's evaluation (float32 [N], in test-set
# order): what a paired comparison with another run on the same images reads.
TEST_LOG_PX_FILE = "test_log_px.npy"


class EvaluationError(UserError):
  """Evaluation gave a non-finite test metric."""


@precision.estimates  # also its eager parts (the figures' reconstructions)
def evaluate_and_plot(config: TrainConfig, model: Model, params, data: data_lib.ImageData,
                       eval_key, workdir: Path, log, step: int) -> dict:
  """Test metrics (an EvaluationError if any is non-finite) and, on process 0, the run's
  figures."""
  figures = workdir / "figures"
  t0 = time.perf_counter()
  quadrature = ({"limit": config.quadrature_limit, "points": config.quadrature_points}
                if model.latent_dim == 2 else None)
  log(f"evaluating {len(data.test)} test images: importance sampling with k={config.eval_k}"
      + (f", then {config.quadrature_points}^2-point grid quadrature" if quadrature else ""))
  results = evaluate_lib.evaluate(params, eval_key, data.test, model=model,
                                  binarization=data.binarization, k=config.eval_k,
                                  batch_size=config.eval_batch_size, quadrature=quadrature,
                                  proposal_samples=config.eval_proposal_samples, log=log,
                                  per_image=True)
  log_px_N = results.pop("test_log_px")
  bad = sorted(name for name, value in results.items()
               if isinstance(value, float) and not math.isfinite(value))
  if bad:
    raise EvaluationError(
        f"evaluation of the model at step {step} gave non-finite "
        f"{', '.join(f'{name} = {results[name]}' for name in bad)}; no test metrics or "
        "figures were written. The model's outputs overflow (a diverged run: try a lower "
        "--learning_rate) or the data does not fit the likelihood")
  results["eval_seconds"] = time.perf_counter() - t0
  log(f"evaluated {results['num_test_images']} test images with k={config.eval_k} "
      f"in {results['eval_seconds']:.1f}s")
  if not distributed.is_primary():
    return results
  workdir_lib.write_array_atomically(workdir / TEST_LOG_PX_FILE, log_px_N)
  figures.mkdir(exist_ok=True)
  params = distributed.local_copy(params)
  if model.has_encoder:  # the first test images as the evaluation read them
    x = np.asarray(over_images.binarized(data.test[:10], eval_key, data.binarization))
    figures_key = keys.stream(eval_key, keys.FIGURES)
    q = evaluate_lib.proposal_for(params, keys.item(figures_key, 0), x, model=model,
                                  proposal_samples=100)
    recon = model.mean_image(params, evaluate_lib.posterior_mean(
        q, keys.item(figures_key, 1), 100))
    image_plots.save_reconstructions(x, np.asarray(recon), data.image_shape,
                               figures / "reconstructions.png")
  if model.latent_dim == 2:
    points, limit = 20, 3.0
    z = jnp.asarray(latent_plots.latent_walk_points(points, limit))
    means = model.mean_image(params, z)
    latent_plots.save_latent_grid_walk(np.asarray(means), data.image_shape, points, limit,
                                figures / "latent_grid_walk.png")
  return results
