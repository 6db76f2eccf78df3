r"""The literature card: published NLLs beside vbayes' runs of the same protocols, from the
shipped checkpoints (experiments/checkpoints/<row>/).

    python -m experiments.literature_card            # prints the card (markdown)
    python -m experiments.literature_card --write    # and puts it into README.md

Each row of ROWS names a study config and run (its protocol and PUBLISHED number) and
the folder of its shipped checkpoint, written by experiments.export_checkpoint and
evaluated there by experiments.evaluate (evaluation_ais.json on the test images,
evaluation_bdmc.json on simulated ones). A row without a shipped checkpoint is listed as
not run yet, with the wall time its protocol projects to. The README's card sits between
the two CARD_MARKERS lines; tests/unit/test_literature_card.py checks it equals this output.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
from absl import flags

from experiments import common, configs
from vbayes.evaluation import paired
from vbayes.training import params_npz

FLAGS = flags.FLAGS
flags.DEFINE_bool("write", False, "Replace the card in README.md.")

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "experiments" / "checkpoints"
CARD_MARKERS = ("<!-- literature card: python -m experiments.literature_card --write -->",
                "<!-- end of the literature card -->")


@dataclasses.dataclass(frozen=True)
class Row:
  name: str          # the shipped checkpoint's folder in experiments/checkpoints/
  config: str        # the study config (experiments/configs/) and its run
  run: str
  model: str
  protocol: str
  projection: str    # the wall time the protocol projects to here, until it has run
  compare_to: str | None = None  # the row whose per-image NLLs it is compared with


ROWS = (
    Row("burda_one_layer_vae_k1", "burda_table1", "one_layer_vae_k1",
        "VAE, one layer, tanh 784-200-200-50", "Burda et al. 2016, Table 1: dynamic "
        "binarization, k=1, batch 20, 3280 epochs", "3.5 h on one core of a 2-core Intel Xeon, at the 790 steps/s measured there alone"),
    Row("burda_one_layer_iwae_k5", "burda_table1", "one_layer_iwae_k5",
        "IWAE, one layer, tanh 784-200-200-50", "Burda et al. 2016, Table 1: dynamic "
        "binarization, k=5, batch 20, 3280 epochs", "6 h on one core, at the 456 steps/s measured there alone",
        compare_to="burda_one_layer_vae_k1"),
    Row("tw_vae_standard", "tomczak_welling", "vae_standard",
        "VAE, N(0, I) prior, gated 784-300-300-40", "Tomczak & Welling 2018, Table 2: static "
        "MNIST, warm-up 100 epochs, early stopping (patience 50)", "up to 2.5 h on one core, at 110 steps/s beside another run"),
    Row("tw_vae_vampprior", "tomczak_welling", "vae_vampprior",
        "VAE, VampPrior K=500, gated 784-300-300-40", "Tomczak & Welling 2018, Table 2: static "
        "MNIST, warm-up 100 epochs, early stopping (patience 50)", "at 38 steps/s on one core, 7.3 h at the 2000-epoch limit; early stopping comes after "
        "epoch 190 in a first, interrupted run, if at all",
        compare_to="tw_vae_standard"),
    Row("burda_two_layers_vae_k1", "burda_table1", "two_layers_vae_k1",
        "VAE, two layers, tanh, L=100+50", "Burda et al. 2016, Table 1: dynamic "
        "binarization, k=1, batch 20, 3280 epochs", "about 5 h on one core, scaled from bench/study_throughput.py"),
    Row("burda_two_layers_iwae_k5", "burda_table1", "two_layers_iwae_k5",
        "IWAE, two layers, tanh, L=100+50", "Burda et al. 2016, Table 1: dynamic "
        "binarization, k=5, batch 20, 3280 epochs", "about 12 h on one core, scaled likewise",
        compare_to="burda_two_layers_vae_k1"),
)

HEADER = ("| model | protocol | published NLL | vbayes IS k=5000 (± s.e.) | AIS | vbayes − "
          "published | against | epochs | active units | time, hardware | checkpoint |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def _read_json(path: Path) -> dict | None:
  return json.loads(path.read_text()) if path.is_file() else None


def _hardware(h: dict) -> str:
  if h.get("backend") == "cpu":
    return f"{h.get('cpu', 'CPU')}, {h.get('cores')} cores, JAX {h.get('jax')}"
  return f"{h.get('device')} ({h.get('backend')}), JAX {h.get('jax')}"


def _ais(folder: Path) -> str:
  """AIS on the first N test images, and by how much it tightens the run's own IS on the
  same images (paired: every command binarizes a test image alike, vbayes.keys)."""
  ais, bdmc = (_read_json(folder / f"evaluation_{m}.json") for m in ("ais", "bdmc"))
  if ais is None:
    return "not run yet"
  text = (f"{ais['nll']:.2f} ± {ais['nll_stderr']:.2f} (first {ais['images']} images, "
          f"{ais['chains']} chains × {ais['ais_steps']} steps, frozen steps")
  per_image = folder / "evaluation_ais_log_px.npy"
  if per_image.is_file():
    ais_N = np.load(per_image)
    is_N = np.load(folder / "test_log_px.npy")[:len(ais_N)]
    d = paired.paired_difference(ais_N, is_N)  # NLL by AIS - NLL by IS
    text += (f"; IS k=5000 on them {-is_N.mean():.2f}, AIS lower by {-d['difference']:.2f} ± "
             f"{d['paired_stderr']:.2f}")
  text += ")"
  if bdmc is not None:
    text += (f"; BDMC gap {bdmc['gap']:.2f} on {bdmc['images']} simulated images "
             f"({bdmc['chains']} × {bdmc['ais_steps']})")
  return text


def _against(row: Row) -> str:
  if row.compare_to is None:
    return ""
  mine, theirs = (SHIPPED / name / "test_log_px.npy" for name in (row.name, row.compare_to))
  if not (mine.is_file() and theirs.is_file()):
    return f"{row.compare_to}: not run yet"
  d = paired.paired_difference(np.load(mine), np.load(theirs))
  return (f"{d['difference']:+.2f} ± {d['paired_stderr']:.2f} (paired s.e.) vs "
          f"{row.compare_to}")


def card_row(row: Row) -> str:
  published, _ = configs.module(row.config).PUBLISHED[row.run]
  folder = SHIPPED / row.name
  if not (folder / params_npz.PARAMS_FILE).is_file():
    cells = [row.model, row.protocol, f"{published:.2f}", f"not run yet (projected: {row.projection})",
             "", "", _against(row), "", "", "", ""]
  else:
    reference = params_npz.read_reference(folder)
    run = reference["run"]
    epochs = f"{run['epoch']:g}"
    if run.get("evaluated_step") is not None and run.get("stopped_early"):
      steps_per_epoch = run["step"] / run["epoch"]
      epochs += f" (stopped early; best at {run['evaluated_step'] / steps_per_epoch:g})"
    time = (f"{run['train_seconds'] / 3600:.1f} h training + {run['eval_seconds'] / 60:.0f} min "
            f"IS; {_hardware(reference['hardware'])}")
    cells = [row.model, row.protocol, f"{published:.2f}",
             f"**{run['test_nll']:.2f}** ± {run['test_nll_stderr']:.2f}", _ais(folder),
             f"{run['test_nll'] - published:+.2f}", _against(row), epochs,
             " + ".join(map(str, run["active_units_per_layer"])), time,
             f"[{row.name}](experiments/checkpoints/{row.name})"]
  return "| " + " | ".join(cells) + " |"


def card() -> str:
  return "\n".join([HEADER, *map(card_row, ROWS)])


def replace_card(readme: str, table: str) -> str:
  start, end = readme.index(CARD_MARKERS[0]), readme.index(CARD_MARKERS[1])
  return readme[:start] + CARD_MARKERS[0] + "\n" + table + "\n" + readme[end:]


def main(argv):
  del argv
  table = card()
  print(table)
  if FLAGS.write:
    readme = REPO / "README.md"
    readme.write_text(replace_card(readme.read_text(), table))


if __name__ == "__main__":
  common.run(main)
