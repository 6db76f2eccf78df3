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
Each prints progress with rate and ETA; the last line is one JSON object: method, nll
(mean over images), nll_stderr (over images), images, the settings, the time, and for
bdmc lower and upper (means of the bounds on log p(x)) and gap; ais and bdmc also report
the mean HMC acceptance.
"""

import contextlib
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common
from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes import distributed, precision
from vbayes.evaluation import ais, grid
from vbayes.evaluation import importance_sampling as evaluate_lib
from vbayes.models import build
from vbayes.numerics import largest_divisor_at_most
from vbayes.progress import Progress
from vbayes.training import loop as training_loop
from vbayes.training import held_out, params_npz
from vbayes.training import workdir as workdir_lib

METHODS = ("is", "ais", "bdmc", "quadrature")
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
flags.DEFINE_integer("seed", 0, "Seed of the binarization, samples and chains (a JAX key "
                     "holds 32 bits).", lower_bound=0, upper_bound=2**32 - 1)
flags.DEFINE_enum("checkpoint", "evaluated", ("evaluated", "latest", "best"), "The checkpoint "
                  "the run's own test evaluation used (best under early stopping, else latest), "
                  "the run's latest, or the one of its best validation ELBO "
                  "(checkpoints_best/).")
common.define_data_flags()
common.define_process_flags()


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


def start_distribution(params, key, x, model, config, method: str):
  """q0 of a batch: the model's proposal (moment-matched for an implicit encoder, the prior
  without an encoder), or with --ais_start=prior for ais and bdmc, the prior itself."""
  if method in ("ais", "bdmc") and FLAGS.ais_start == "prior":
    return model.prior_as_proposal(params, x)
  return evaluate_lib.proposal_for(params, key, x, model=model,
                                   proposal_samples=config.eval_proposal_samples)


def per_image(n: int, size: int, names: tuple[str, ...], evaluate_batch,
              progress: Progress | None = None) -> dict:
  """evaluate_batch(i, a, b) -> {name: [b - a] array for each of `names`} for images
  a..b of batch i, run on this process's share of the batches (every P-th,
  vbayes.distributed) and gathered: {name: [n] array} on every process. Batch i's keys
  depend on i alone, so P processes give one process's numbers."""
  spans = [(a, min(a + size, n)) for a in range(0, n, size)]
  local = {name: [] for name in names}
  for done, i in enumerate(distributed.my_batches(len(spans))):
    a, b = spans[i]
    values = jax.device_get(evaluate_batch(i, a, b))
    for name in names:  # padded to `size` rows for the gather
      local[name].append(np.pad(np.asarray(values[name], np.float32), (0, size - (b - a))))
    if progress is not None:
      progress.update(min(n, (done + 1) * size * jax.process_count()))
  out = {}
  for name in names:
    gathered = distributed.gather_batches(local[name], len(spans), (size,))
    out[name] = np.concatenate([v[:b - a] for v, (a, b) in zip(gathered, spans)])
  return out


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
  config, params, step = load_run(workdir, FLAGS.checkpoint)
  model = build(config.model)
  key = jax.random.key(FLAGS.seed)
  settings = ais.HMCSettings(leapfrog_steps=FLAGS.leapfrog_steps,
                             initial_step_size=FLAGS.initial_step_size,
                             tuning=FLAGS.step_tuning, pilot_chains=FLAGS.pilot_chains)
  out = {"method": FLAGS.method, "workdir": str(workdir), "checkpoint": FLAGS.checkpoint,
         "step": step}
  log = ((lambda line: print(line, flush=True)) if distributed.is_primary()
         else (lambda line: None))
  start_time = time.perf_counter()
  chain_settings = dict(model=model, chains=FLAGS.chains, num_steps=FLAGS.ais_steps,
                        schedule=FLAGS.schedule, settings=settings)

  if FLAGS.method == "bdmc":
    n = FLAGS.images or 100
    z_all, x_all = ais.simulate(params, jax.random.fold_in(key, 1), n, model=model)

    def bdmc_batch(i, a, b):
      x = x_all[a:b]
      q0 = start_distribution(params, jax.random.fold_in(key, 2 + i), x, model, config, "bdmc")
      res = ais.bdmc(params, jax.random.fold_in(key, 10_000 + i), x, z_all[a:b], q0,
                     **chain_settings)
      return {"lower": res["lower"], "upper": res["upper"],
              "acceptance": (res["acceptance_forward"] + res["acceptance_reverse"]) / 2}

    res = per_image(n, FLAGS.batch_size, ("lower", "upper", "acceptance"), bdmc_batch, Progress(
        f"bdmc, {FLAGS.chains} chains x {FLAGS.ais_steps} steps", n, "images", log, every=10.0))
    lower, upper, acceptance = res["lower"], res["upper"], res["acceptance"]
    log_px = lower
    if not np.all(np.isfinite(upper)):
      raise ValueError("bdmc gave a non-finite upper bound for "
                       f"{int(np.sum(~np.isfinite(upper)))} images; nothing was written")
    out.update(lower=float(lower.mean()), upper=float(upper.mean()),
               gap=float((upper - lower).mean()), data="simulated from the model")
  else:
    data = data_lib.load(config.data, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir)
    test = data.test[:FLAGS.images] if FLAGS.images else data.test
    n = len(test)
    x_all = data_lib.to_float(jax.random.fold_in(key, 0), jnp.asarray(test),
                              data.binarization)
    if FLAGS.method == "quadrature":
      if model.latent_dim != 2:
        raise ValueError(f"quadrature needs a 2-D latent; this model's is {model.latent_dim}-D: "
                         "use --method=ais")
      log_px = per_image(n, -(-n // jax.process_count()), ("log_px",), lambda i, a, b: {
          "log_px": grid.quadrature_log_likelihood(params, x_all[a:b], model=model, limit=5.0,
                                                   points=FLAGS.quadrature_points, log=log)
      })["log_px"]
    else:
      size = 100 if FLAGS.method == "is" else FLAGS.batch_size
      k = FLAGS.k or config.eval_k

      def batch_log_px(i, a, b):
        x = x_all[a:b]
        q0 = start_distribution(params, jax.random.fold_in(key, 2 + i), x, model, config,
                                FLAGS.method)
        if FLAGS.method == "is":
          rows = evaluate_lib.default_rows_per_chunk(model.data_dim)
          chunk = largest_divisor_at_most(k, max(1, rows // size))
          lp, _ = evaluate_lib.importance_sampled_log_likelihood(
              params, jax.random.fold_in(key, 10_000 + i), x, model=model, k=k, chunk=chunk,
              proposal=q0)
          return {"log_px": lp}
        res = ais.ais_log_likelihood(params, jax.random.fold_in(key, 10_000 + i), x, q0,
                                     **chain_settings)
        return {"log_px": res["log_px"], "acceptance": res["acceptance"]}

      what = (f"importance sampling, k={k}" if FLAGS.method == "is" else
              f"ais, {FLAGS.chains} chains x {FLAGS.ais_steps} steps")
      names = ("log_px",) if FLAGS.method == "is" else ("log_px", "acceptance")
      res = per_image(n, size, names, batch_log_px, Progress(what, n, "images", log))
      log_px, acceptance = res["log_px"], res.get("acceptance")
      out["k" if FLAGS.method == "is" else "proposal"] = (
          k if FLAGS.method == "is" else "prior" if FLAGS.ais_start == "prior" else
          "moment-matched" if not model.has_proposal_density else
          "encoder" if model.has_encoder else "prior")
    out["data"] = f"{config.data.dataset} test split ({config.data.binarization})"
  if not np.all(np.isfinite(log_px)):
    raise ValueError(f"{FLAGS.method} gave a non-finite log p(x) for "
                     f"{int(np.sum(~np.isfinite(log_px)))} images; nothing was written")
  out.update(nll=float(-log_px.mean()),
             nll_stderr=float(np.std(log_px, ddof=1) / math.sqrt(len(log_px)))
             if len(log_px) > 1 else None,
             images=int(len(log_px)), seconds=round(time.perf_counter() - start_time, 1))
  if FLAGS.method in ("ais", "bdmc"):
    out.update(chains=FLAGS.chains, ais_steps=FLAGS.ais_steps, schedule=FLAGS.schedule,
               leapfrog_steps=FLAGS.leapfrog_steps, step_tuning=FLAGS.step_tuning,
               initial_step_size=FLAGS.initial_step_size, start=FLAGS.ais_start,
               seed=FLAGS.seed, acceptance=round(float(np.mean(acceptance)), 3))
    if FLAGS.step_tuning == "pilot":
      out["pilot_chains"] = FLAGS.pilot_chains
    if out["acceptance"] < LOW_ACCEPTANCE and distributed.is_primary():
      print(f"warning: the HMC transitions accepted {out['acceptance']:.3f} of their "
            "proposals: the chains barely moved, so this is close to importance sampling "
            "from the start distribution, not AIS; lower --initial_step_size or use "
            "--step_tuning=pilot", file=sys.stderr, flush=True)
  if FLAGS.method == "quadrature":
    out.update(quadrature_points=FLAGS.quadrature_points, limit=5.0)
  if jax.process_count() > 1:
    out["processes"] = jax.process_count()
  if distributed.is_primary():
    if FLAGS.method != "bdmc":  # per test image, for paired comparisons (experiments.compare)
      workdir_lib.write_array_atomically(workdir / f"evaluation_{FLAGS.method}_log_px.npy",
                                         log_px)
    workdir_lib.write_atomically(workdir / f"evaluation_{FLAGS.method}.json",
                                 json.dumps(out, indent=2))
    print(json.dumps(out))


if __name__ == "__main__":
  common.run(main)
