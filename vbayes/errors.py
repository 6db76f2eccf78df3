"""The one base class of every error a user can act on.

Its message names what is wrong and what to do; experiments/ prints it as one
`error:` line and exits with status 1. experiments/common.py does the same for
ValueError (the library's argument checks name the bad value) and OSError (the
system names the file); anything else keeps its traceback.
"""

import math


class UserError(RuntimeError):
  """Bad input, an unusable workdir or data, a diverged run: the message says what to do."""


class DataError(UserError):
  """Data that cannot be had: the message says what to do."""


class ConfigError(UserError, ValueError):
  """A config value that cannot work; the message names the field."""


def require(condition: bool, message: str):
  """ConfigError(message) unless `condition`: the check every config field makes."""
  if not condition:
    raise ConfigError(message)


def positive_finite(value: float) -> bool:
  return value > 0 and math.isfinite(value)
