"""The README's set-up commands, read from it, and the flags that make them tiny."""

import re
import shlex

from tests.helpers.paths import REPO

# Appended to the README's commands so that they run in seconds on generated data.
TINY_TRAIN = ["--hidden_sizes=16", "--epochs=2", "--batch_size=20", "--eval_k=10",
              "--quadrature_points=64", "--steps_per_call=5"]
TINY_EVALUATE = ["--chains=2", "--ais_steps=5", "--pilot_chains=2"]


def set_up_commands() -> list[list[str]]:
  """The `python -m experiments...` commands of the README's "Set up" section, split
  into arguments, in their order."""
  text = (REPO / "README.md").read_text()
  section = text.split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
  blocks = re.findall(r"```\n(.*?)```", section, re.S)
  lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
  return [shlex.split(line)[2:] for line in lines if line.startswith("python -m experiments.")]


def readme_train_flags() -> list[str]:
  """The README's training command's flags but its workdir and offline data (the test
  gives its own), then TINY_TRAIN."""
  (_, *args), = [c for c in set_up_commands() if c[0] == "experiments.train"]
  kept = [a for a in args if not a.startswith(("--workdir=", "--manual_dir="))]
  return [*kept, *TINY_TRAIN]
