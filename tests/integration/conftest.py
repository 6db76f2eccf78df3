"""The integration tier's shared set-up, made once per session in this process: the
command line's training runs (tests/helpers/cli_runs.py) and tfds' offline preparation
of MNIST from the original files."""

import socket

import pytest

from tests.helpers import fake_data
from tests.helpers.cli_runs import RUNS
from tests.helpers.command_line import run_main
from tests.helpers.paths import HAVE_SHARED_DATA, SHARED_DATA
from vbayes import config as config_lib
from vbayes import data as data_lib


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory):
  """cli_run(name) -> (result, workdir): RUNS[name] through experiments.train's command
  line (`run_main`), run the first time a test asks for it, in root/<name>."""
  root = tmp_path_factory.mktemp("cli_runs")
  data = {"fake": fake_data.fake_mnist(root / "fake"), "grey": fake_data.grey_mnist(root / "grey"),
          None: root / "unused"}
  done = {}

  def get(name: str):
    if name not in done:
      source, args = RUNS[name]
      done[name] = (run_main([f"--workdir={root / name}", f"--data_dir={data[source]}", *args]),
                    root / name)
    return done[name]

  return get


def _refuse_the_network(*args, **kwargs):
  raise AssertionError(f"the preparation tried to reach the network: {args} {kwargs}")


@pytest.fixture(scope="session")
def tfds_prepared_from_original_files(tmp_path_factory):
  """A tfds data dir in which tfds prepared binarized_mnist and mnist from ../shared/data,
  with every network connection refused."""
  if not HAVE_SHARED_DATA:
    pytest.skip(f"no offline MNIST files at {SHARED_DATA}")
  data_dir = tmp_path_factory.mktemp("tfds_prepared")
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(socket, "create_connection", _refuse_the_network)
    for config in (config_lib.DataConfig(dataset="binarized_mnist"),
                   config_lib.DataConfig(dataset="mnist", binarization="dynamic")):
      data_lib.load(config, data_dir=data_dir, manual_dir=SHARED_DATA)
  return data_dir
