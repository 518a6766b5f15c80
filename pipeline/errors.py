"""The pipeline's user-facing errors, at the bottom of the import graph.

Any module may raise these without importing anything heavy (no OpenCV, torch or pydantic), so no
lazy imports are needed to dodge cycles. The CLI turns both into one ``error: ...`` line and a
non-zero exit; ``str(err)`` is therefore written for the user, naming the file or option at fault.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (a file, a folder, a command-line value); ``str(err)`` is a one-line message
    naming the file."""


class ConfigError(ValueError):
    """A config file or override is wrong; the message is meant for the user as is."""


USER_ERRORS = (InputError, ConfigError)  # what the CLI reports as one line instead of a traceback
