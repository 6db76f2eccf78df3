r"""This checkout against an earlier revision of vbayes, timed in one process: the
training step of train_throughput.py (ELBO), of iwae_throughput.py (IWAE k=50), of
AVB with adaptive contrast (same networks, implicit encoder, 128 moment samples) and
the k=5000 importance-sampled evaluation of one batch.

    python bench/ab_against_revision.py --rev=41201b7 [--calls=7] [--smoke]

The revision's vbayes/ is unpacked by `git archive` into a temporary folder as the
package vbayes_<rev> (its imports renamed), so both versions compile the same
shapes side by side; their timers alternate (common.rates, best of --calls calls).
Each case also reports the largest difference between the two versions' results
after the same calls from the same seed (parameters after training, log p(x) of the
evaluation): 0.0 where the computation is unchanged to the bit; and whether XLA
compiled the same program (optimized HLO without names and metadata),
in which case any difference in rate is the machine's noise.
Last line: one JSON object {case: {"new", "old", "ratio", "max_abs_diff",
"same_compiled_program"}}; a ratio
of new to old rate below 0.97 is a slowdown beyond this machine's noise.
"""

import dataclasses
import importlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import common  # bench/common.py, beside this script

flags.DEFINE_string("rev", "HEAD", "The git revision to compare with.")
flags.DEFINE_integer("calls", 7, "Timed calls of each timer (the best is reported).")
flags.DEFINE_bool("smoke", False, "Tiny shapes and few steps: checks that the script runs.")
FLAGS = flags.FLAGS

REPO = Path(__file__).resolve().parent.parent


def import_revision(rev: str, folder: Path):
  """vbayes as of `rev`, imported as the package vbayes_<rev>."""
  sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, check=True,
                       capture_output=True, text=True).stdout.strip()
  name = f"vbayes_{sha}"
  archive = subprocess.run(["git", "archive", rev, "vbayes"], cwd=REPO, check=True,
                           capture_output=True).stdout
  subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
  (folder / "vbayes").rename(folder / name)
  for path in (folder / name).rglob("*.py"):
    path.write_text(re.sub(r"\bvbayes\b(?=[.\s])", name, path.read_text()))
  sys.path.insert(0, str(folder))
  return modules(name)


# Where each module the comparison uses sits, in this layout and in earlier ones.
MODULE_PATHS = {"config": ("config",), "models": ("models",),
                "train": ("training.step", "train"),
                "evaluate": ("evaluation.importance_sampling", "evaluate")}


def modules(package: str) -> dict:
  """{"config", "models", "train", "evaluate"}: the package's modules of those roles."""
  out = {}
  for role, paths in MODULE_PATHS.items():
    for path in paths:
      try:
        out[role] = importlib.import_module(f"{package}.{path}")
        break
      except ModuleNotFoundError:
        continue
  return out


def model_config(config_lib, shapes, proposal: str = "gaussian"):
  """The MLP model of `shapes` in the revision's ModelConfig: one config per part (the
  registries), or the flat fields before them."""
  fields = {f.name for f in dataclasses.fields(config_lib.ModelConfig)}
  if "hidden_sizes" in fields:  # the flat ModelConfig
    return config_lib.ModelConfig(latent_dim=shapes.latent_dim, hidden_sizes=shapes.hidden_sizes,
                                  encoder=proposal)
  package = config_lib.__name__.rpartition(".")[0]
  parts = importlib.import_module(f"{package}.parts")
  hidden = {"hidden_sizes": shapes.hidden_sizes}
  return config_lib.ModelConfig(
      latent_dim=shapes.latent_dim, network=parts.part_config("network", "mlp", **hidden),
      proposal=parts.part_config("proposal", proposal,
                                 **(hidden if proposal == "implicit" else {})))


def configs(config_lib, shapes, steps):
  model = model_config(config_lib, shapes)
  implicit = model_config(config_lib, shapes, "implicit")
  if hasattr(config_lib, "objective_config"):  # each objective its own settings
    iwae = {"objective": config_lib.objective_config("iwae", k=50)}
    avb = {"objective": config_lib.objective_config("avb", adaptive_contrast=True)}
  else:  # before each objective had its own Config: its settings flat on TrainConfig
    iwae = {"objective": "iwae", "k": 50}
    avb = {"objective": "avb", "avb": config_lib.AVBConfig(adaptive_contrast=True)}
  return {"elbo": config_lib.TrainConfig(model=model, batch_size=shapes.batch,
                                         steps_per_call=steps),
          "iwae_k50": config_lib.TrainConfig(model=model, **iwae, batch_size=shapes.batch,
                                             steps_per_call=max(1, steps // 5)),
          "avb_ac": config_lib.TrainConfig(model=implicit, **avb, batch_size=shapes.batch,
                                           steps_per_call=max(1, steps // 5))}


def _optimized_hlo(lowered) -> str:
  """The compiled program's text without metadata (source lines, op names) and
  numbering, its lines sorted."""
  text = lowered.compile().as_text()
  text = re.sub(r", metadata=\{[^}]*\}", "", text)
  text = re.sub(r"^(FileNames|FunctionNames|FileLocations|StackFrames)$|^\d+ .*$", "", text,
                flags=re.MULTILINE)  # the tables of source files, functions and frames
  text = re.sub(r"[._]\d+\b", "", text)  # instruction and region numbers
  # Computations may come in another order: compare the sorted lines.
  return "\n".join(sorted(line for line in text.splitlines() if line.strip()))


def train_hlo(config, images, training_step) -> str:
  chunk = training_step.make_train_chunk(
      training_step.make_update(config), batch_size=config.batch_size,
      steps_per_call=config.steps_per_call, steps_per_epoch=500, binarization="fixed")
  state = training_step.init_state(jax.random.key(0), config)
  return _optimized_hlo(chunk.lower(state, images, jax.random.key(1), jax.random.key(2)))


def eval_timer(lib, shapes, images, k):
  """log p(x) of one batch by k-sample importance sampling; work in images."""
  model = model_config(lib["config"], shapes)
  init = (lib["models"].build(model).init if hasattr(lib["models"], "build")
          else lambda key: lib["models"].init(key, model))
  params = init(jax.random.key(0))
  x = images[:shapes.batch].astype(jnp.float32)
  chunk = max(d for d in range(1, 2000 // shapes.batch + 1) if k % d == 0)
  fn = lib["evaluate"].importance_sampled_log_likelihood
  run = lambda _: fn(params, jax.random.key(3), x, model=model, k=k, chunk=chunk)[0]
  hlo = _optimized_hlo(fn.lower(params, jax.random.key(3), x, model=model, k=k, chunk=chunk))
  return common.Timer(run, None, shapes.batch), hlo


def main(argv):
  del argv
  jax.config.update("jax_default_matmul_precision", "highest")
  shapes = common.SMOKE if FLAGS.smoke else common.VAE
  steps, k = (10, 50) if FLAGS.smoke else (100, 5000)
  images = jnp.asarray((np.random.default_rng(0).random((500 * shapes.batch, 784)) < 0.13)
                       .astype(np.uint8))
  with tempfile.TemporaryDirectory() as folder:
    old = import_revision(FLAGS.rev, Path(folder))
    new = modules("vbayes")
    timers, hlo = {}, {}
    for version, lib in (("new", new), ("old", old)):
      for case, config in configs(lib["config"], shapes, steps).items():
        hlo[f"{case}/{version}"] = train_hlo(config, images, lib["train"])
        timers[f"{case}/{version}"] = common.training_timer(config, images, steps_per_epoch=500,
                                                            training_step=lib["train"])
      timers[f"eval_k{k}/{version}"], hlo[f"eval_k{k}/{version}"] = eval_timer(lib, shapes,
                                                                             images, k)
    # Each timer's final state: run the same calls as `rates` does, then compare.
    finals = {}
    def keep(name, timer):
      def run(state):
        finals[name] = timer.run(state)
        return finals[name]
      return common.Timer(run, timer.state, timer.work)
    rates = common.rates({name: keep(name, t) for name, t in timers.items()}, FLAGS.calls)
  out = {}
  for case in sorted({name.split("/")[0] for name in rates}):
    a, b = finals[f"{case}/new"], finals[f"{case}/old"]
    a, b = (a["params"], b["params"]) if isinstance(a, dict) else (a, b)
    diff = max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a),
                                                              jax.tree.leaves(b)))
    new_rate, old_rate = rates[f"{case}/new"], rates[f"{case}/old"]
    same = hlo[f"{case}/new"] == hlo[f"{case}/old"]
    out[case] = {"new": round(new_rate, 1), "old": round(old_rate, 1),
                 "ratio": round(new_rate / old_rate, 3), "max_abs_diff": diff,
                 "same_compiled_program": same}
    print(f"{case}: new {new_rate:.1f}/s, old {old_rate:.1f}/s, ratio {new_rate / old_rate:.3f}, "
          f"max |new - old| {diff:.3g}, same compiled program: {same}")
  print(json.dumps({"rev": FLAGS.rev, "backend": jax.default_backend(), "smoke": FLAGS.smoke,
                    **out}))


if __name__ == "__main__":
  app.run(main)
