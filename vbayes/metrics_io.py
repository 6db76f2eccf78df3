"""metrics.jsonl (one JSON object per logging point) and TensorBoard scalars."""

import json
import math
import os
from pathlib import Path

METRICS_FILE = "metrics.jsonl"


class MetricWriter:
  """Appends records to workdir/metrics.jsonl and their numbers to TensorBoard."""

  def __init__(self, workdir: str | Path):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self.path = Path(workdir) / METRICS_FILE
    self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

  def write(self, record: dict):
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    for name, value in record.items():
      if name != "step" and isinstance(value, (int, float)) and math.isfinite(value):
        self._tb.add_scalar(name, value, record["step"])
    self._tb.flush()

  def close(self):
    self._tb.close()


def read_metrics(workdir: str | Path) -> list[dict]:
  path = Path(workdir) / METRICS_FILE
  if not path.exists():
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def truncate_after(workdir: str | Path, step: int):
  """Drops records past `step` (logged by a run that died before its next checkpoint)."""
  path = Path(workdir) / METRICS_FILE
  records = read_metrics(workdir)
  kept = [r for r in records if r["step"] <= step and "test_nll" not in r]
  if len(kept) == len(records):
    return
  tmp = path.with_suffix(".tmp")
  with open(tmp, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in kept)
  os.replace(tmp, path)
