"""The held-out curve of a training run, and the checkpoint where it was best.

At every checkpoint (epoch end) of a run whose data has validation images
(`DataConfig.validation`), `HeldOut` evaluates on them

    validation_elbo     mean_x L_1(x), the ELBO (one sample per image),
    validation_nll_is   -mean_x L_k(x), k = validation_is_k, every
                        validation_is_every_epochs epochs and at the last step,

with L_k the importance-weighted bound (`importance_sampling.held_out_bounds`), and
keeps the state with the highest validation ELBO so far in workdir/checkpoints_best
(Orbax checkpoints like those in checkpoints/; the newest is the best). Overfitting shows as a
validation -ELBO that rises while the training loss falls. Every checkpoint is scored with
the same key (the same noise draws, and binarization of the images), so the curve and the
choice of the best compare models, not noise. `should_stop` is the early-stopping rule of
TrainConfig.early_stopping_patience.
"""

import math
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from vbayes import distributed
from vbayes.config import TrainConfig
from vbayes.evaluation import importance_sampling as evaluate_lib
from vbayes.training import checkpoint as checkpoint_lib
from vbayes.training import metrics_io

BEST_DIR = "checkpoints_best"


class HeldOut:
  """held_out(step, state, train_key) -> the record's validation numbers; saves the
  state to BEST_DIR when its validation ELBO is the best of the run so far."""

  def __init__(self, config: TrainConfig, images_NxD: np.ndarray, binarization: str,
               key: jax.Array, workdir: Path, *, start_step: int, steps_per_epoch: int,
               total_steps: int, log: Callable[[str], None], model=None):
    self._config, self._images, self._binarization = config, images_NxD, binarization
    self._model = config.model if model is None else model  # a Model, or its ModelConfig
    self._key, self._log = key, log
    self._steps_per_epoch, self._total_steps = steps_per_epoch, total_steps
    # Two kept: each is a new best, so after a resume drops a later one (a step the run
    # takes again) the one before is still the best up to start_step.
    self._best = checkpoint_lib.Checkpointer(workdir / BEST_DIR, max_to_keep=2)
    self._best.drop_after(start_step)
    earlier = [(r["validation_elbo"], r["step"]) for r in metrics_io.read_metrics(workdir)
               if r.get("validation_elbo") is not None and r["step"] <= start_step]
    if earlier and self._best.latest_step() is None and config.early_stopping_patience:
      raise checkpoint_lib.CheckpointError(
          f"{workdir / BEST_DIR} holds no checkpoint, though metrics.jsonl records "
          f"{len(earlier)} validation ELBOs: early stopping cannot tell the best so far. "
          f"Restore {BEST_DIR}/ beside checkpoints/ (a copied run needs both), or use a "
          "fresh --workdir")
    # The best, the earliest of equal ones (as the running comparison, a strict >, keeps).
    best, best_step = (max(earlier, key=lambda e: (e[0], -e[1]))
                       if earlier and self._best.latest_step() is not None else (math.nan, 0))
    # Every process must take the same save decisions (an Orbax save is collective):
    # process 0's reading of metrics.jsonl decides.
    best, best_step = distributed.broadcast(best), int(distributed.broadcast(best_step))
    self._best_elbo = None if math.isnan(best) else best
    self._best_step = best_step if self._best_elbo is not None else None

  @property
  def best_step(self) -> int | None:
    """The step of the best validation ELBO so far (None before the first)."""
    return self._best_step

  def should_stop(self, step: int) -> bool:
    """Early stopping: True once more than early_stopping_patience epochs, counted from
    epoch early_stopping_from_epoch, have passed since the best validation ELBO (never
    with patience 0). Tomczak & Welling's rule, whose counter stays 0 in warm-up."""
    patience = self._config.early_stopping_patience
    if not patience or self._best_step is None:
      return False
    since = max(self._best_step // self._steps_per_epoch,
                self._config.early_stopping_from_epoch)
    return step // self._steps_per_epoch - since > patience

  def __call__(self, step: int, state, train_key) -> dict:
    epoch = step // self._steps_per_epoch
    every = self._config.validation_is_every_epochs
    with_is = every > 0 and (epoch % every == 0 or step == self._total_steps)
    ks = (1, self._config.validation_is_k) if with_is else (1,)
    bounds = evaluate_lib.held_out_bounds(
        state["params"], self._key, self._images,
        model=self._model, binarization=self._binarization, ks=ks,
        batch_size=self._config.eval_batch_size,
        proposal_samples=self._config.eval_proposal_samples)
    record = {"validation_elbo": bounds[1]}
    if with_is:
      record.update(validation_nll_is=-bounds[ks[1]], validation_is_k=ks[1])
    if np.isfinite(bounds[1]) and (self._best_elbo is None or bounds[1] > self._best_elbo):
      self._best_elbo, self._best_step = bounds[1], step
      self._best.save(step, state, train_key)
      self._best.wait()
      record["validation_best"] = True
    self._log(f"validation ({len(self._images)} images): ELBO {bounds[1]:.3f}"
              + (f", NLL by IS k={ks[1]} {-bounds[ks[1]]:.3f}" if with_is else "")
              + (" (best so far: kept)" if record.get("validation_best") else ""))
    return record

  def close(self):
    self._best.close()
