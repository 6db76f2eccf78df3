"""The command-line programs (absl flags live here, not in vbayes).

A run of several processes: the coordination service's C++ warnings (a cancelled
barrier when two processes claim one id, ...) would precede vbayes' one error line; their
level is read when jaxlib loads, before any flag is parsed, so it is set here, from the
command line and JAX_NUM_PROCESSES, unless TF_CPP_MIN_LOG_LEVEL says otherwise.
"""

import os
import sys

_PROCESSES = [arg.split("=", 1)[-1] for arg in sys.argv if arg.startswith("--num_processes=")]
if (_PROCESSES[-1] if _PROCESSES else os.environ.get("JAX_NUM_PROCESSES", "1")).strip() != "1":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ errors still show
