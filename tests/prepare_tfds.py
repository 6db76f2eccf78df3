"""Prepares binarized_mnist and mnist with tfds from the original files, offline, into
a data dir: `python tests/prepare_tfds.py DATA_DIR MANUAL_DIR`.

tests/conftest.py starts it in the background when the suite collects the test that
checks the preparation (tests/test_data.py), so that tfds' minute of encoding
examples runs beside the other tests instead of before them. Any attempt to open a
network connection fails the preparation.
"""

import socket
import sys
from pathlib import Path

from vbayes import config as config_lib
from vbayes import data as data_lib


def refuse(*args, **kwargs):
  raise AssertionError(f"the preparation tried to reach the network: {args}")


if __name__ == "__main__":
  socket.create_connection = refuse
  data_dir, manual_dir = map(Path, sys.argv[1:3])
  for config in (config_lib.DataConfig(dataset="binarized_mnist"),
                 config_lib.DataConfig(dataset="mnist", binarization="dynamic")):
    data_lib.load(config, data_dir=data_dir, manual_dir=manual_dir)
  print("prepared", flush=True)
