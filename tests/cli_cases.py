"""Runs experiments.train's command line once per case, all in one process, so that
tests/test_cli.py can try many runs and bad inputs for the cost of one interpreter start.

Reads one JSON list of arguments per line on stdin; prints one JSON object per case:
{"argv", "code" (exit status, or "traceback"), "stdout", "stderr"}. Parsing and error
handling are the command line's own (`experiments.common`); only the process is shared.
"""

import contextlib
import io
import json
import sys
from pathlib import Path
import traceback

from absl import flags

from experiments import common
from experiments import train


def run_case(argv: list[str]) -> dict:
  flags.FLAGS.unparse_flags()
  out, err, code = io.StringIO(), io.StringIO(), 0
  with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
    try:
      common.with_errors(train.main)(common.parse_flags(["train", *argv]))
    except SystemExit as e:
      code = e.code
    except BaseException:  # pylint: disable=broad-except
      traceback.print_exc()
      code = "traceback"
  return {"argv": argv, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


if __name__ == "__main__":  # cases on stdin, results on stdout; or OUT_DIR CASES_FILE:
  if len(sys.argv) == 3:      # OUT_DIR/results.jsonl (conftest's background runs)
    out_dir, cases = Path(sys.argv[1]), Path(sys.argv[2]).read_text().splitlines()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "results.jsonl", "w") as results:
      for line in cases:
        results.write(json.dumps(run_case(json.loads(line))) + "\n")
        results.flush()
  else:
    for line in sys.stdin:
      print(json.dumps(run_case(json.loads(line))), flush=True)
