r"""Two models' test NLLs compared on the same images: the mean per-image difference and
its paired standard error (vbayes/evaluation/paired.py).

    python -m experiments.compare --a=W_A --b=W_B

--a and --b: a workdir or shipped checkpoint (its test_log_px.npy: the per-image log p(x)
of the run's own evaluation) or a .npy file of per-image log p(x) (experiments.evaluate's
evaluation_<method>_log_px.npy). Compare only vectors from the same evaluation setup:
the same test images, binarized with the same keys (runs of one seed evaluated by
their own run, or both by experiments.evaluate with one --seed). Prints one JSON
object: difference (NLL_a - NLL_b), paired_stderr, unpaired_stderr, images.
"""

import json
from pathlib import Path

import numpy as np
from absl import flags

from experiments import common
from vbayes.evaluation import paired
from vbayes.training import final_evaluation

FLAGS = flags.FLAGS
flags.DEFINE_string("a", None, "Model a: a workdir, shipped checkpoint or .npy file.",
                    required=True)
flags.DEFINE_string("b", None, "Model b: a workdir, shipped checkpoint or .npy file.",
                    required=True)


def per_image_log_px(where: str) -> np.ndarray:
  path = Path(where)
  if path.is_dir():
    path = path / final_evaluation.TEST_LOG_PX_FILE
  if not path.is_file():
    raise FileNotFoundError(f"{path} does not exist: give a run evaluated by this version "
                            "of vbayes, or a .npy from experiments.evaluate")
  return np.load(path)


def main(argv):
  del argv
  result = paired.paired_difference(per_image_log_px(FLAGS.a), per_image_log_px(FLAGS.b))
  print(json.dumps({"a": FLAGS.a, "b": FLAGS.b, **result}))


if __name__ == "__main__":
  common.run(main)
