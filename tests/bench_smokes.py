"""Run by conftest in the background from collection on: each benchmark script of
tests/test_bench.py's BENCH_SMOKES at its --smoke size, one after another. Writes
OUT_DIR/<i>.json, the script's last stdout line, or OUT_DIR/<i>.error with its stderr."""

import os
from pathlib import Path
import subprocess
import sys

REPO = Path(__file__).resolve().parent.parent


def main(out_dir: Path):
  sys.path.insert(0, str(REPO))
  from tests.test_bench import BENCH_SMOKES  # pylint: disable=import-outside-toplevel
  out_dir.mkdir(parents=True, exist_ok=True)
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
  for i, (script, args, _) in enumerate(BENCH_SMOKES):
    out = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    if out.returncode == 0:
      (out_dir / f"{i}.json").write_text(out.stdout.strip().splitlines()[-1])
    else:
      (out_dir / f"{i}.error").write_text(out.stderr[-3000:])


if __name__ == "__main__":
  main(Path(sys.argv[1]))
