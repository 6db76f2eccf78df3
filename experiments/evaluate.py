r"""Evaluate a trained run's test log-likelihood by importance sampling, AIS, BDMC or quadrature.

    python -m experiments.evaluate --workdir=W --method=ais [--images=1000] \
        [--chains=16 --ais_steps=1000] --manual_dir=../shared/data

W is an experiments.train workdir (any model, any objective); its config and latest
checkpoint are read, and nothing there is changed but evaluation_<method>.json (and for
the test images, evaluation_<method>_log_px.npy: each image's log p(x), in order, for
experiments.compare). W may also
be a shipped checkpoint (experiments/checkpoints/<row>: config.json and params.npz, from
experiments.export_checkpoint).
  is          importance sampling with --k samples from q(z|x) (the model's proposal: the
              encoder, the moment-matched Gaussian of an implicit one, or the prior)
  ais         annealed importance sampling from that proposal (or the prior, --ais_start)
              to p(z|x) (--chains per
              image, --ais_steps distributions on a --schedule, HMC with --leapfrog_steps
              whose step sizes are tuned toward 0.65 acceptance on a pilot run of
              --pilot_chains chains, then frozen; --step_tuning): a stochastic lower
              bound that is exact as the steps grow
  bdmc        on --images simulated from the model (z ~ p(z), x ~ p(x|z)): forward AIS
              (lower bound) and reverse AIS from the true z (upper bound); their gap bounds
              AIS's error on real data of similar difficulty
  quadrature  exact 2-D grid quadrature (--quadrature_points per axis on [-5, 5]^2)
  kde         importance sampling from the kernel density of --kde_centres encoder draws
              (AVB's proposal; vbayes/evaluation/kernel_density.py)
The estimators are vbayes.evaluation.estimators.ESTIMATORS, one signature each.
Each prints progress with rate and ETA; the last line is one JSON object: method, nll
(mean over images), nll_stderr (over images), images, the settings, the time, and for
bdmc lower and upper (means of the bounds on log p(x)) and gap; ais and bdmc also report
the mean HMC acceptance; and the config of the run it scored, and its checkpoint's step.
"""

import contextlib
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np
from absl import flags

from experiments import common
from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes import distributed, keys, precision, resources
from vbayes.evaluation import ais, estimators
from vbayes.models import build
from vbayes.training import loop as training_loop
from vbayes.training import held_out, params_npz
from vbayes.training import workdir as workdir_lib

METHODS = tuple(estimators.ESTIMATORS)
LOW_ACCEPTANCE = 0.05  # mean HMC acceptance below which ais and bdmc warn
FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A trained experiments.train workdir.", required=True)
flags.DEFINE_enum("method", "ais", METHODS, "How to estimate log p(x).")
flags.DEFINE_integer("images", None, "Evaluate the first N test images (bdmc: simulate N; "
                     "default: all test images, bdmc 100).", lower_bound=1)
flags.DEFINE_integer("batch_size", 10, "Images per jitted call (ais, bdmc); is: 100.",
                     lower_bound=1)
flags.DEFINE_integer("k", None, "is: importance samples per image (default: the run's eval_k).",
                     lower_bound=1)
flags.DEFINE_integer("chains", 16, "ais, bdmc: AIS chains per image.", lower_bound=1)
flags.DEFINE_integer("ais_steps", 1000, "ais, bdmc: annealing distributions T.", lower_bound=1)
flags.DEFINE_enum("schedule", "sigmoid", ais.SCHEDULES, "ais, bdmc: the beta schedule.")
flags.DEFINE_integer("leapfrog_steps", 10, "ais, bdmc: leapfrog steps per HMC transition.",
                     lower_bound=1)
flags.DEFINE_enum("step_tuning", "pilot", ais.TUNINGS, "ais, bdmc: HMC step sizes tuned toward "
                  "0.65 acceptance on a pilot run and then frozen (exact: E[w] = p(x)), "
                  "adapted inside the estimating chains (the reference implementations' way; "
                  "approximate), or fixed at --initial_step_size.")
flags.DEFINE_integer("pilot_chains", 4, "ais, bdmc: chains per image of the pilot run.",
                     lower_bound=1)
flags.DEFINE_float("initial_step_size", 0.01, "ais, bdmc: the HMC step size tuning starts "
                   "from (--step_tuning=fixed: the one used).", lower_bound=1e-6)
flags.DEFINE_enum("ais_start", "proposal", ("proposal", "prior"), "ais, bdmc: anneal from the "
                  "model's proposal q(z|x), or from the prior p(z) (broad: it covers modes an "
                  "encoder misses, at the price of a longer path).")
flags.DEFINE_integer("quadrature_points", 512, "quadrature: grid points per axis (at least "
                     f"{config_lib.MIN_QUADRATURE_POINTS}: coarser grids misstate log p(x) by "
                     "nats).", lower_bound=config_lib.MIN_QUADRATURE_POINTS)
flags.DEFINE_integer("kde_centres", 1000, "kde: encoder draws per image whose kernel density "
                     "proposes.", lower_bound=1)
flags.DEFINE_float("kde_bandwidth", 0.1, "kde: the kernel density's bandwidth h.",
                   lower_bound=1e-6)
flags.DEFINE_integer("seed", 0, "Seed of the binarization, samples and chains (a JAX key "
                     "holds 32 bits): a run's own seed reads its test images as its "
                     "evaluation did (vbayes.keys).", lower_bound=0, upper_bound=2**32 - 1)
flags.DEFINE_enum("checkpoint", "evaluated", ("evaluated", "latest", "best"), "The checkpoint "
                  "the run's own test evaluation used (best under early stopping, else latest), "
                  "the run's latest, or the one of its best validation ELBO "
                  "(checkpoints_best/).")
common.define_data_flags()
common.define_process_flags()
flags.adopt_module_key_flags(common)  # --help shows the data, process and config flags


def load_run(workdir: Path, which: str = "evaluated"):
  """(config, params, step) of the run in `workdir`: its checkpoint `which` (evaluated,
  latest or best: the --checkpoint flag) and that checkpoint's step, or a shipped
  checkpoint's params.npz and the step it was exported at; a clear error when there is
  none."""
  path = workdir / workdir_lib.CONFIG_FILE
  if not path.is_file():
    raise workdir_lib.WorkdirError(f"{workdir} holds no {workdir_lib.CONFIG_FILE}: give the "
                                   "--workdir of a run trained by experiments.train")
  try:
    config = config_lib.TrainConfig.from_dict(json.loads(path.read_text()))
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise workdir_lib.WorkdirError(
        f"{path} is not a vbayes config ({type(e).__name__}: {e}); restore the run's "
        "config.json or give another --workdir") from None
  if is_shipped(workdir):
    if which != "evaluated":
      raise workdir_lib.WorkdirError(
          f"{workdir} is a shipped checkpoint: it holds the parameters the run was evaluated "
          f"at, no {which} checkpoint; leave out --checkpoint")
    config, params = params_npz.load_shipped(workdir)
    run = params_npz.read_reference(workdir)["run"]
    return config, params, run.get("evaluated_step", run.get("step"))
  checkpoints = {"latest": "checkpoints", "best": held_out.BEST_DIR}.get(
      which, training_loop.evaluated_checkpoints(config))
  folder = workdir / checkpoints
  if not folder.is_dir() or not any(folder.iterdir()):
    raise workdir_lib.WorkdirError(
        f"{workdir} holds no checkpoint yet: train the run first" if checkpoints == "checkpoints"
        else f"{workdir} holds no {checkpoints}/: the run had no validation images "
        "(--validation) or was trained before vbayes kept the best checkpoint; use "
        "--checkpoint=latest")
  params = training_loop.restore_params(workdir, config, checkpoints)
  return config, params, training_loop.latest_step(folder)


def is_shipped(workdir: Path) -> bool:
  """A shipped checkpoint (params.npz and config.json), not a training run's workdir."""
  return (workdir / params_npz.PARAMS_FILE).is_file() and not (workdir / "checkpoints").is_dir()


def locked(workdir: Path):
  """The workdir's lock while a run in it is evaluated: a training run there would change
  its checkpoints underneath, and a folder that cannot be written fails here, not after
  minutes of work. None for a shipped checkpoint, or a folder without a run (load_run
  says what is wrong)."""
  if is_shipped(workdir) or not (workdir / workdir_lib.CONFIG_FILE).is_file():
    return contextlib.nullcontext()
  return workdir_lib.open_locked(workdir)


def main(argv):
  del argv
  common.start_processes()
  workdir = Path(FLAGS.workdir)
  # Full float32 for the eager parts too (q0, priors); the lock on process 0.
  with jax.default_matmul_precision(precision.ESTIMATES), distributed.on_primary(
      lambda: locked(workdir)):
    evaluate(workdir)


def evaluate(workdir: Path):
  if FLAGS.method == "quadrature":  # before minutes of loading and work
    resources.check_quadrature_fits(FLAGS.quadrature_points)
  config, params, step = load_run(workdir, FLAGS.checkpoint)
  model = build(config.model)
  if FLAGS.method in ("ais", "bdmc"):  # every chain of a batch's images in one step
    resources.check_evaluation_fits(
        model, FLAGS.batch_size * FLAGS.chains, flag="batch_size or chains",
        setting=f"--batch_size={FLAGS.batch_size} x --chains={FLAGS.chains}", gradient=True)
  settings = estimators.Settings(
      k=FLAGS.k or config.eval_k, batch_size=FLAGS.batch_size,
      is_batch_size=config.eval_batch_size, chains=FLAGS.chains,
      ais_steps=FLAGS.ais_steps, schedule=FLAGS.schedule,
      hmc=ais.HMCSettings(leapfrog_steps=FLAGS.leapfrog_steps,
                          initial_step_size=FLAGS.initial_step_size,
                          tuning=FLAGS.step_tuning, pilot_chains=FLAGS.pilot_chains),
      start=FLAGS.ais_start, proposal_samples=config.eval_proposal_samples,
      quadrature_points=FLAGS.quadrature_points, simulated=FLAGS.images or 100,
      kde_centres=FLAGS.kde_centres, kde_bandwidth=FLAGS.kde_bandwidth)
  out = {"method": FLAGS.method, "workdir": str(workdir), "checkpoint": FLAGS.checkpoint,
         "step": step}
  log = ((lambda line: print(line, flush=True)) if distributed.is_primary()
         else (lambda line: None))
  start_time = time.perf_counter()
  test, binarization = np.zeros((0, model.data_dim), np.uint8), "fixed"
  estimator = estimators.ESTIMATORS[FLAGS.method]
  simulated = getattr(estimator, "simulates_images", False)
  if not simulated:
    data = data_lib.load(config.data, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir)
    test = data.test[:FLAGS.images] if FLAGS.images else data.test
    binarization = data.binarization
    out["data"] = f"{config.data.dataset} test split ({config.data.binarization})"
  per_image, summary = estimator(
      params, keys.evaluation_key(FLAGS.seed), test, model=model, binarization=binarization,
      settings=settings, log=log)
  log_px = per_image["log_px"]
  if not np.all(np.isfinite(log_px)):
    raise ValueError(f"{FLAGS.method} gave a non-finite log p(x) for "
                     f"{int(np.sum(~np.isfinite(log_px)))} images; nothing was written")
  out.update(summary)
  out.update(nll=float(-log_px.mean()),
             nll_stderr=float(np.std(log_px, ddof=1) / math.sqrt(len(log_px)))
             if len(log_px) > 1 else None,
             images=int(len(log_px)), seconds=round(time.perf_counter() - start_time, 1))
  if "acceptance" in out:
    out["seed"] = FLAGS.seed
    if out["acceptance"] < LOW_ACCEPTANCE and distributed.is_primary():
      print(f"warning: the HMC transitions accepted {out['acceptance']:.3f} of their "
            "proposals: the chains barely moved, so this is close to importance sampling "
            "from the start distribution, not AIS; lower --initial_step_size or use "
            "--step_tuning=pilot", file=sys.stderr, flush=True)
  if jax.process_count() > 1:
    out["processes"] = jax.process_count()
  out["config"] = config.to_dict()  # what was scored, beside the checkpoint's step
  if distributed.is_primary():
    if not simulated:  # per test image, for paired comparisons (experiments.compare)
      workdir_lib.write_array_atomically(workdir / f"evaluation_{FLAGS.method}_log_px.npy",
                                         log_px)
    text = json.dumps(out, indent=2, allow_nan=False)  # strict JSON: a NaN is an error
    workdir_lib.write_atomically(workdir / f"evaluation_{FLAGS.method}.json", text)
    print(json.dumps(out, allow_nan=False))


if __name__ == "__main__":
  common.run(main)
