r"""Test NLL of every run of a study, beside the published number its config names.

    python -m experiments.nll_table --config=burda_table1 --workdir=W \
        --runs=one_layer_vae_k1 --manual_dir=../shared/data

Each run (and seed) of the study (--config, a vbayes.config.Study; --runs picks some)
is trained in its own experiments.train workdir, W/<run>_seed<seed>, and evaluated on
the test set as its config says (importance sampling with eval_k samples). Interrupt
and rerun at will: a run resumes from its last checkpoint, a finished one is read.
--epochs=N trains every run for N epochs of its schedule: the same steps as the first
N epochs of a longer run, so rerunning with more epochs extends it; the table marks a
run shorter than its config's as such.

Writes, in W: results.json and results.md, the table: per run, epochs, test NLL
(mean ± standard error over the test images, or over seeds with several), active
units, training and evaluation time, and the config module's PUBLISHED number.
"""

import json
from pathlib import Path

import numpy as np
from absl import flags

from experiments import common, configs
from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes.training import loop as training_loop
from vbayes.training import metrics_io

FLAGS = flags.FLAGS
common.define_config_flags(None)
common.define_data_flags()
flags.DEFINE_string("workdir", None, "Output folder.", required=True)
flags.DEFINE_list("runs", None, "Runs of the study to train (default: all).")
flags.DEFINE_integer("epochs", None, "Train every run for this many epochs of its schedule "
                     "(default: its config's).")
flags.DEFINE_integer("eval_k", None, "Importance samples per test image (default: the "
                     "config's).")
SHORTHANDS = {"epochs": ("epochs",), "eval_k": ("eval_k",)}


def main(argv):
  del argv
  if not FLAGS.config:
    raise config_lib.ConfigError("--config names the study, e.g. --config=burda_table1")
  study = common.config_from_flags(SHORTHANDS)
  if not isinstance(study, config_lib.Study):
    raise config_lib.ConfigError(f"--config={FLAGS.config} is one run, not a study: train it "
                                 "with python -m experiments.train")
  full_epochs = {name: run.epochs for name, run in configs.load(FLAGS.config).runs}
  published = getattr(configs.module(FLAGS.config), "PUBLISHED", {})
  if FLAGS.runs is not None:
    study = study.select(FLAGS.runs)
  workdir = Path(FLAGS.workdir)
  datasets = {}
  finals = {}
  for (name, seed), run in study.configs().items():
    if run.data not in datasets:
      datasets[run.data] = data_lib.load(run.data, data_dir=FLAGS.data_dir,
                                         manual_dir=FLAGS.manual_dir)
    run_dir = workdir / f"{name}_seed{seed}"
    training_loop.trained_params(run, run_dir, data=datasets[run.data],
                                 log=lambda line, n=f"{name} seed {seed}": print(
                                     f"[{n}] {line}", flush=True))
    records = metrics_io.read_metrics(run_dir)
    finals.setdefault(name, []).append(
        {**records[-1], "train_seconds": max(r.get("train_seconds", 0.0) for r in records)})
  results = {}
  for name, runs in finals.items():
    run = study.run(name)
    nll = np.array([r["test_nll"] for r in runs])
    # What the runs' last evaluations say: a workdir trained further than --epochs, or
    # evaluated before with another k, is read, not redone.
    epochs = {round(r["epoch"], 3) for r in runs}
    eval_ks = {r["eval_k"] for r in runs}
    results[name] = {
        "epochs": epochs.pop() if len(epochs) == 1 else sorted(epochs),
        "full_epochs": full_epochs[name],
        "eval_k": eval_ks.pop() if len(eval_ks) == 1 else sorted(eval_ks),
        "seeds": list(study.seeds), "test_nll": nll.tolist(),
        "test_nll_stderr": [r["test_nll_stderr"] for r in runs],
        "active_units": [r.get("active_units") for r in runs],
        "active_units_per_layer": [r.get("active_units_per_layer") for r in runs],
        "train_seconds": [r["train_seconds"] for r in runs],
        "eval_seconds": [r.get("eval_seconds") for r in runs],
        "published": published.get(name)}
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "results.json").write_text(json.dumps(results, indent=2))
  table = results_table(results)
  (workdir / "results.md").write_text(table + "\n")
  print(table)


def results_table(results: dict) -> str:
  rows = ["| run | epochs | test NLL (nats) | active units | training, evaluation (s) | "
          "published |", "| --- | --- | --- | --- | --- | --- |"]
  for name, r in results.items():
    epochs = f"{r['epochs']:g}" if not isinstance(r["epochs"], list) else str(r["epochs"])
    if max(np.atleast_1d(r["epochs"])) < r["full_epochs"]:
      epochs += f" of its config's {r['full_epochs']}"
    if len(r["test_nll"]) == 1:
      nll = f"{r['test_nll'][0]:.2f} ± {r['test_nll_stderr'][0]:.2f} (s.e. over images)"
    else:
      nll = common.mean_and_spread(r["test_nll"]) + " (over seeds)"
    units = "; ".join(f"{total}" + (f" ({' + '.join(map(str, layers))})"
                                    if layers and len(layers) > 1 else "")
                      for total, layers in zip(r["active_units"], r["active_units_per_layer"]))
    times = "; ".join(f"{t:.0f}, {e:.0f}" for t, e in zip(r["train_seconds"],
                                                          r["eval_seconds"]))
    value = r["published"]
    rows.append(f"| {name} | {epochs} | {nll}, IS k={r['eval_k']} | {units} | {times} | "
                + (f"{value[0]:.2f} ({value[1]})" if value else "") + " |")
  return "\n".join(rows)


if __name__ == "__main__":
  common.run(main)
