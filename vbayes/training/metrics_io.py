"""metrics.jsonl (one JSON object per logging point) and TensorBoard scalars.

Every line is strict JSON: a non-finite number is written as null (JSON has no
NaN or Infinity), so any JSON reader can parse the file. A run that dies while
appending can leave a cut-off last line; `read_metrics` drops it with a warning
and `repair` rewrites the file without it.
"""

import json
import math
import sys
from pathlib import Path

from vbayes.errors import UserError

METRICS_FILE = "metrics.jsonl"


class MetricsError(UserError):
  """metrics.jsonl is damaged somewhere other than its last line."""


def to_json_value(value):
  """value with every non-finite float replaced by None (null in JSON)."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: to_json_value(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_json_value(v) for v in value]
  return value


def dumps(record: dict) -> str:
  return json.dumps(to_json_value(record), allow_nan=False)


class MetricWriter:
  """Appends records to workdir/metrics.jsonl and their numbers to TensorBoard."""

  def __init__(self, workdir: str | Path):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self.path = Path(workdir) / METRICS_FILE
    self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

  def write(self, record: dict):
    with open(self.path, "a") as f:
      f.write(dumps(record) + "\n")
    for name, value in record.items():
      if name != "step" and isinstance(value, (int, float)) and math.isfinite(value):
        self._tb.add_scalar(name, value, record["step"])
    self._tb.flush()

  def close(self):
    self._tb.close()


def _parse(path: Path) -> tuple[list[dict], bool]:
  """(records, whether a cut-off last line was dropped)."""
  lines = path.read_text().splitlines()
  records = []
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError as e:
      if i == len(lines) - 1:
        return records, True
      raise MetricsError(f"{path} line {i + 1} is not JSON ({e.msg}); move the file aside "
                         "to keep the run's other files, or use another --workdir") from e
  return records, False


def read_metrics(workdir: str | Path) -> list[dict]:
  """The records of workdir/metrics.jsonl ([] if there is none).

  A cut-off last line (a run killed while writing it) is left out with a warning.
  """
  path = Path(workdir) / METRICS_FILE
  if not path.exists():
    return []
  records, cut = _parse(path)
  if cut:
    print(f"warning: ignoring the cut-off last line of {path}", file=sys.stderr)
  return records


def _rewrite(path: Path, records: list[dict]):
  """Replaces `path` atomically by `records`, one per line."""
  from vbayes.training.workdir import write_atomically  # pylint: disable=g-import-not-at-top
  write_atomically(path, "".join(dumps(r) + "\n" for r in records))


def truncate_after(workdir: str | Path, step: int):
  """Keeps the training records up to `step`, the step of the checkpoint a run resumes
  from (0 with no checkpoint). Records past it were logged by a run that died before
  its next checkpoint, and test metrics belong to a finished run; a cut-off last line
  is repaired with one warning."""
  path = Path(workdir) / METRICS_FILE
  if not path.exists():
    return
  records, cut = _parse(path)
  if cut:
    print(f"warning: {path} ended in a cut-off line (a run killed while writing it); "
          "dropping that line", file=sys.stderr)
  kept = [r for r in records if r.get("step", 0) <= step and "test_nll" not in r]
  if cut or len(kept) != len(records):
    _rewrite(path, kept)
