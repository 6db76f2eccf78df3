"""One config per study: a module here with `get_config()`, which returns the study's
frozen config (a vbayes.config.TrainConfig, or a Study of several runs), and a
docstring with the command, the runtime and the expected result.

    python -m experiments.train --config=vae_2d --workdir=W --manual_dir=../shared/data

`--config` also takes the path of a .py file with a get_config(); `--set=path=value`
(repeatable) overrides one field (vbayes/overrides.py), e.g. --set=model.latent_dim=5.
"""

import importlib
import importlib.util
import pkgutil
from pathlib import Path

from vbayes.config import ConfigError, Study, TrainConfig


def names() -> list[str]:
  """The configs in this folder."""
  return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]))


def load(name: str):
  """get_config() of the config `name` (a module here) or of the .py file at `name`: a
  TrainConfig or a Study; a ConfigError naming the file for anything else, or for a
  get_config() that fails."""
  found = module(name)
  try:
    config = found.get_config()
  except ConfigError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"--config={name}: its get_config() failed ({type(e).__name__}: "
                      f"{e})") from None
  if not isinstance(config, (TrainConfig, Study)):
    raise ConfigError(f"--config={name}: get_config() returned {type(config).__name__}, "
                      "not a vbayes.config.TrainConfig or Study")
  return config


def module(name: str):
  """The module of the config `name` (here, or the .py file at `name`): it has a
  get_config(), and may have PUBLISHED, published numbers for its runs."""
  if name.endswith(".py"):
    path = Path(name)
    if not path.is_file():
      raise ConfigError(f"--config={name}: no such file")
    spec = importlib.util.spec_from_file_location(f"vbayes_config_{path.stem}", path)
    found = importlib.util.module_from_spec(spec)
    try:
      spec.loader.exec_module(found)
    except Exception as e:  # pylint: disable=broad-except
      where = f" (line {e.lineno})" if isinstance(e, SyntaxError) else ""
      raise ConfigError(f"--config={name} cannot be loaded{where}: {type(e).__name__}: "
                        f"{e}") from None
  elif name in names():
    found = importlib.import_module(f"{__name__}.{name}")
  else:
    raise ConfigError(f"unknown config {name!r}: choose one of {', '.join(names())} "
                      "(experiments/configs/) or give a .py file with a get_config()")
  if not hasattr(found, "get_config"):
    raise ConfigError(f"--config={name} has no get_config()")
  return found
