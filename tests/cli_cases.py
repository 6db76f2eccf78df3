"""Runs a command line (experiments.train, or experiments.evaluate) once per case, all
in one process, so that the tests can try many runs and bad inputs for the cost of one
interpreter start.

    python tests/cli_cases.py [evaluate]      cases on stdin, results on stdout
    python tests/cli_cases.py OUT_DIR CASES   OUT_DIR/results.jsonl (conftest's background runs)

A case is one JSON list of arguments per line; each result one JSON object:
{"argv", "code" (exit status, or "traceback"), "stdout", "stderr"}. Parsing and error
handling are the command line's own (`experiments.common`); only the process is shared.
"""

import contextlib
import importlib
import io
import json
import sys
from pathlib import Path
import traceback

from absl import flags

from experiments import common


def run_case(argv: list[str], module: str = "train") -> dict:
  """experiments.<module>'s main on `argv`, its output captured. Its flags are defined
  once per process (absl's registry is global): one module per process."""
  main = importlib.import_module(f"experiments.{module}").main
  flags.FLAGS.unparse_flags()
  out, err, code = io.StringIO(), io.StringIO(), 0
  with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
    try:
      common.with_errors(main)(common.parse_flags([module, *argv]))
    except SystemExit as e:
      code = e.code
    except BaseException:  # pylint: disable=broad-except
      traceback.print_exc()
      code = "traceback"
  return {"argv": argv, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


if __name__ == "__main__":
  if len(sys.argv) == 3:
    out_dir, cases = Path(sys.argv[1]), Path(sys.argv[2]).read_text().splitlines()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "results.jsonl", "w") as results:
      for line in cases:
        results.write(json.dumps(run_case(json.loads(line))) + "\n")
        results.flush()
  else:
    module = sys.argv[1] if len(sys.argv) == 2 else "train"
    for line in sys.stdin:
      print(json.dumps(run_case(json.loads(line), module)), flush=True)
