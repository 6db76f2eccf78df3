"""What every experiment script shares: flags parsed with one-line errors, and the
library's errors printed as one `error:` line with exit status 1.

    if __name__ == "__main__":
      common.run(main)       # instead of absl.app.run(main)
"""

import functools
import logging as std_logging
import sys

from absl import app, flags, logging

from vbayes.errors import UserError

# What a user can act on. ValueError covers checks in library code that name the bad
# value; OSError names the file the system refused (a full disk, a missing folder).
USER_ERRORS = (UserError, ValueError, OSError)


def fail(message: str):
  """Prints `error: message` on one line to stderr and exits with status 1."""
  print("error: " + " ".join(str(message).split()), file=sys.stderr)
  sys.exit(1)


def parse_flags(argv):
  """absl's parser, with a bad or missing flag as one error line instead of a FATAL."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(f"{e}; run with --help to see the flags")


class _DropOrbaxLogs(std_logging.Filter):
  """Orbax (and asyncio, for Orbax's background writes) log a traceback for each failed
  write; vbayes reports the failure itself (checkpoint.CheckpointError), in one line."""

  def filter(self, record):
    if "/orbax/" in record.pathname.replace("\\", "/"):
      return False
    if record.name == "asyncio":
      text = record.getMessage() + str(record.exc_info[1] if record.exc_info else "")
      return "OCDBT" not in text and "orbax" not in text
    return True


def _ignore_closed_event_loops(unraisable):
  """Orbax's background event loops can be collected after they closed, which Python
  reports as an ignored 'Event loop is closed' error after the script's own last line."""
  if not (isinstance(unraisable.exc_value, RuntimeError)
          and str(unraisable.exc_value) == "Event loop is closed"):
    sys.__unraisablehook__(unraisable)


def with_errors(main):
  """Wraps a script's main: the library's errors become one 'error:' line and exit 1."""

  @functools.wraps(main)
  def wrapped(argv):
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it writes at INFO.
    logging.get_absl_handler().addFilter(_DropOrbaxLogs())
    std_logging.getLogger("asyncio").addFilter(_DropOrbaxLogs())
    sys.unraisablehook = _ignore_closed_event_loops
    try:
      return main(argv)
    except USER_ERRORS as e:
      fail(e)

  return wrapped


def run(main):
  """absl.app.run(main) with one-line errors for flags and for the library's errors."""
  app.run(with_errors(main), flags_parser=parse_flags)
