"""User-facing errors.

Every problem caused by the user's input (a name, a file, a YAML key) is raised as a
:class:`SpeederError` whose message says what went wrong and where. The entry points print
the message and exit with status 2 instead of showing a traceback.
"""


class SpeederError(Exception):
    """An error the user can fix; its message is shown as is."""


class ConfigError(SpeederError):
    """A bad model name, dataset name or configuration key/value."""


class DataError(SpeederError):
    """Missing, malformed or unreadable input data."""
