"""Estimators of log p(x) over a set of images, registered by name, one signature:

    per_image, summary = ESTIMATORS[name](params, key, images_NxD, model=model,
                                          binarization=..., settings=Settings(...), log=log)

per_image holds "log_px" [N] (and an estimator's other per-image numbers); summary the
numbers and settings that describe the estimate. Each maps its batch function over the
images with over_images.map_over_images (binarization per image, padding, this
process's share, gather), with keys from the streams of `key`, the evaluation key
(vbayes.keys): with a run's seed, "is" reproduces the run's own test evaluation.
A new estimator is a function of this signature and one line in ESTIMATORS.
"""

import dataclasses
from typing import Callable

import jax
import numpy as np

from vbayes import keys
from vbayes.evaluation import ais, grid, kernel_density, over_images
from vbayes.evaluation import importance_sampling as is_lib
from vbayes.models import Model
from vbayes.progress import Progress


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
  """k: importance samples (is, kde); batch_size: images per jitted call of ais and bdmc,
  is_batch_size of is and kde (a run's eval_batch_size: the same batches, the same keys,
  so is reproduces the run's own evaluation); ais and bdmc: chains per image, ais_steps on a `schedule`,
  the HMC settings, and the start distribution ("proposal": the model's q(z|x),
  moment-matched for an implicit one, the prior without an encoder; or "prior");
  proposal_samples: draws of an implicit q for its moment-matched Gaussian;
  quadrature_points per axis on [-quadrature_limit, quadrature_limit]^2; simulated:
  images bdmc simulates; kde_centres, kde_bandwidth: the kernel density's."""
  k: int = 5000
  batch_size: int = 10
  is_batch_size: int = 100
  chains: int = 16
  ais_steps: int = 1000
  schedule: str = "sigmoid"
  hmc: ais.HMCSettings = ais.HMCSettings()
  start: str = "proposal"
  proposal_samples: int = 1000
  quadrature_points: int = 512
  quadrature_limit: float = 5.0
  simulated: int = 100
  kde_centres: int = 1000
  kde_bandwidth: float = 0.1


def _start(params, key, x, model: Model, settings: Settings):
  """q0 of a batch for AIS: the model's proposal (is_lib.proposal_for), or the prior."""
  if settings.start == "prior":
    return model.prior_as_proposal(params, x)
  return is_lib.proposal_for(params, key, x, model=model,
                             proposal_samples=settings.proposal_samples)


def _proposal_name(model: Model) -> str:
  """What importance sampling draws from: the encoder, its moment-matched Gaussian (an
  implicit encoder), or the prior (no encoder)."""
  if not model.has_encoder:
    return "prior"
  return "encoder" if model.has_proposal_density else "moment-matched"


def importance_sampling(params, key, images_NxD, *, model: Model, binarization: str,
                        settings: Settings, log=None):
  """log p(x) by k-sample importance sampling from the model's proposal (is_lib)."""
  size, k = settings.is_batch_size, settings.k
  chunk = is_lib.chunk_size(k, size, model)
  sample_key, proposal_key = keys.stream(key, keys.SAMPLES), keys.stream(key, keys.PROPOSAL)

  def batch(i, x):
    q = (is_lib.proposal_for(params, keys.item(proposal_key, i), x, model=model,
                             proposal_samples=settings.proposal_samples)
         if model.has_encoder else None)
    return {"log_px": is_lib.importance_sampled_log_likelihood(
        params, keys.item(sample_key, i), x, model=model, k=k, chunk=chunk, proposal=q)[0]}

  values = over_images.map_over_images(
      batch, images_NxD, key=key, binarization=binarization, batch_size=size,
      progress=Progress(f"importance sampling, k={k}", len(images_NxD), "images", log),
      wait_for="log_px")
  return values, {"k": k, "proposal": _proposal_name(model)}


def annealed(params, key, images_NxD, *, model: Model, binarization: str,
             settings: Settings, log=None):
  """log p(x) by annealed importance sampling from q0 to p(z|x) (ais.ais_log_likelihood)."""
  chain_key, start_key = keys.stream(key, keys.CHAINS), keys.stream(key, keys.PROPOSAL)

  def batch(i, x):
    q0 = _start(params, keys.item(start_key, i), x, model, settings)
    res = ais.ais_log_likelihood(params, keys.item(chain_key, i), x, q0, model=model,
                                 **_chain_settings(settings))
    return {"log_px": res["log_px"], "acceptance": res["acceptance"]}

  values = over_images.map_over_images(
      batch, images_NxD, key=key, binarization=binarization, batch_size=settings.batch_size,
      progress=Progress(f"ais, {settings.chains} chains x {settings.ais_steps} steps",
                        len(images_NxD), "images", log), wait_for="log_px")
  start = "prior" if settings.start == "prior" else _proposal_name(model)
  return values, {"proposal": start, **_ais_summary(values, settings)}


def bdmc(params, key, images_NxD, *, model: Model, binarization: str, settings: Settings,
         log=None):
  """Bidirectional Monte Carlo on settings.simulated images drawn from the model (z ~ p(z),
  x ~ p(x|z); the test images are not used): forward AIS (a lower bound on log p(x)) and
  reverse AIS from the true z (an upper bound). "log_px" is the lower bound."""
  del images_NxD, binarization
  z_all, x_all = ais.simulate(params, keys.stream(key, keys.SIMULATE), settings.simulated,
                              model=model)
  chain_key, start_key = keys.stream(key, keys.CHAINS), keys.stream(key, keys.PROPOSAL)
  size = settings.batch_size

  def batch(i, x):
    z = z_all[i * size:(i + 1) * size]
    z = jax.numpy.concatenate([z, jax.numpy.repeat(z[-1:], len(x) - len(z), 0)])  # padding
    q0 = _start(params, keys.item(start_key, i), x, model, settings)
    res = ais.bdmc(params, keys.item(chain_key, i), x, z, q0, model=model,
                   **_chain_settings(settings))
    return {"log_px": res["lower"], "upper": res["upper"],
            "acceptance": (res["acceptance_forward"] + res["acceptance_reverse"]) / 2}

  values = over_images.map_over_images(  # the simulated x are the model's input already
      batch, np.asarray(x_all), key=key, binarization="fixed", batch_size=size,
      progress=Progress(f"bdmc, {settings.chains} chains x {settings.ais_steps} steps",
                        settings.simulated, "images", log, every=10.0), wait_for="log_px")
  lower, upper = values["log_px"], values["upper"]
  if not np.all(np.isfinite(upper)):
    raise ValueError(f"bdmc gave a non-finite upper bound for {int(np.sum(~np.isfinite(upper)))}"
                     " images; nothing was written")
  return values, {"lower": float(lower.mean()), "upper": float(upper.mean()),
                  "gap": float((upper - lower).mean()), "data": "simulated from the model",
                  **_ais_summary(values, settings)}


bdmc.simulates_images = True  # experiments.evaluate reads no test images for it


def quadrature(params, key, images_NxD, *, model: Model, binarization: str,
               settings: Settings, log=None):
  """log p(x) by grid quadrature over the 2-D latent space (grid), every image at once."""
  if model.latent_dim != 2:
    raise ValueError(f"quadrature needs a 2-D latent; this model's is {model.latent_dim}-D: "
                     "use --method=ais")
  values = over_images.map_over_images(
      lambda i, x: {"log_px": grid.quadrature_log_likelihood(
          params, x, model=model, limit=settings.quadrature_limit,
          points=settings.quadrature_points, log=log)},
      images_NxD, key=key, binarization=binarization,
      batch_size=-(-len(images_NxD) // jax.process_count()))
  return values, {"quadrature_points": settings.quadrature_points,
                  "limit": settings.quadrature_limit}


def kernel_density_sampling(params, key, images_NxD, *, model: Model, binarization: str,
                            settings: Settings, log=None):
  """log p(x) by importance sampling from the kernel density of kde_centres encoder draws
  (kernel_density: AVB's proposal)."""
  size, k = settings.is_batch_size, settings.k
  sample_key = keys.stream(key, keys.SAMPLES)

  def batch(i, x):
    return {"log_px": kernel_density.kde_log_likelihood(
        params, keys.item(sample_key, i), x, model=model, k=k,
        num_centres=settings.kde_centres, bandwidth=settings.kde_bandwidth,
        chunk=is_lib.chunk_size(k, size, model))}

  values = over_images.map_over_images(
      batch, images_NxD, key=key, binarization=binarization, batch_size=size,
      progress=Progress(f"kernel density sampling, k={k}", len(images_NxD), "images", log),
      wait_for="log_px")
  return values, {"k": k, "proposal": "kernel density", "kde_centres": settings.kde_centres,
                  "kde_bandwidth": settings.kde_bandwidth}


def _chain_settings(settings: Settings) -> dict:
  return dict(chains=settings.chains, num_steps=settings.ais_steps,
              schedule=settings.schedule, settings=settings.hmc)


def _ais_summary(values: dict, settings: Settings) -> dict:
  out = {"chains": settings.chains, "ais_steps": settings.ais_steps,
         "schedule": settings.schedule, "leapfrog_steps": settings.hmc.leapfrog_steps,
         "step_tuning": settings.hmc.tuning, "initial_step_size": settings.hmc.initial_step_size,
         "start": settings.start, "acceptance": round(float(np.mean(values["acceptance"])), 3)}
  if settings.hmc.tuning == "pilot":
    out["pilot_chains"] = settings.hmc.pilot_chains
  return out


Estimator = Callable[..., tuple[dict, dict]]
ESTIMATORS: dict[str, Estimator] = {
    "is": importance_sampling,
    "ais": annealed,
    "bdmc": bdmc,
    "quadrature": quadrature,
    "kde": kernel_density_sampling,
}
