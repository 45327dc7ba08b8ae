"""One family of user errors.

Everything the user can get wrong (a flag, a run file, a Spark conf pair, a
missing input, a table without the needed columns, an output made with other
settings) raises a `UsageError`: the command prints one line naming what and
where and exits with code 2. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class UsageError(Exception):
    """A mistake in what the user asked for: one line on stderr, exit code 2."""


class ConfigError(UsageError, ValueError):
    """A bad run file, flag value or setting; the message names the file and the key."""


class InputError(UsageError, FileNotFoundError):
    """Missing or unusable input: no files, unreadable table, missing columns."""


class OutputBusyError(UsageError):
    """The output folder is claimed by another run that is still alive."""


class OutputMismatchError(UsageError):
    """The output exists, finished, but was made from another config or input."""
