"""The one exception type for mistakes a user can fix: bad data or settings, missing or stale artifacts.

The command line turns a `UserError` into its one-line message and exit status 2; any other
exception is a bug and keeps its traceback (exit 1).
"""


class UserError(Exception):
    """A problem with the input, the settings or the run folder; the message says what to try next."""
