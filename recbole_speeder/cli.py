"""Command-line parsing shared by run_recbole_speeder.py and benchmark.py.

RecBole's habit is kept: ``--model=X --dataset=Y --config_files="a.yaml b.yaml"`` plus any
``--key=value`` property override (values are converted as RecBole converts them). Errors
the user can fix are printed as one clear message and exit with status 2.
"""

import sys
from functools import wraps

from recbole_speeder.errors import ConfigError, SpeederError


def parse_overrides(args):
    """``['--epochs=5', '--learning_rate=1e-3']`` -> ``{'epochs': 5, 'learning_rate': 0.001}``."""
    from recbole_speeder.config import Config

    overrides = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ConfigError(f"Cannot read argument '{arg}': properties are given as --key=value.")
        key, value = arg[2:].split("=", 1)
        if key in overrides and overrides[key] != value:
            raise ConfigError(f"Argument --{key} is given twice with different values.")
        overrides[key] = value
    return Config._convert_config_dict(None, overrides)


def friendly_errors(main):
    """Run ``main``; a :class:`SpeederError` becomes a message on stderr and exit status 2."""

    @wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except SpeederError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
