"""Command-line parsing shared by run_recbole_speeder.py and benchmark.py.

RecBole's habit is kept: ``--model=X --dataset=Y --config_files="a.yaml b.yaml"`` plus any
``--key=value`` property override (values are converted as RecBole converts them; a list may
be written without quotes, ``--modalities=[text,seq]``, and ``~`` is None as in YAML). Errors
the user can fix are printed as one clear message and exit with status 2.
"""

import argparse
import sys
from functools import wraps

from recbole_speeder.errors import ConfigError, SpeederError


def run_parser(doc, config_files_help="space-separated YAML files"):
    """The argument parser of a one-model entry point: ``--model``, ``--dataset``, ``--config_files``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="SASRec", help="model name (plugin or RecBole)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name in the data home")
    parser.add_argument("--config_files", default=None, help=config_files_help)
    return parser


def config_file_list(text):
    """``--config_files="a.yaml b.yaml"`` -> ``['a.yaml', 'b.yaml']`` (None when not given)."""
    return text.strip().split(" ") if text else None


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
    converted = Config._convert_config_dict(None, overrides)
    return {key: _bare_list(value) for key, value in converted.items()}


def _bare_list(value):
    """``'[text,seq]'`` (what RecBole's conversion leaves of a list of bare words) ->
    ``['text', 'seq']``; each element converted as RecBole converts a value."""
    from recbole_speeder.config import Config

    if value == "~":  # YAML's None, as in the property files
        return None
    if not (isinstance(value, str) and value.startswith("[") and value.endswith("]")):
        return value
    inner = value[1:-1]
    if any(c in inner for c in "[]{}()"):
        return value
    words = [w.strip().strip("'\"") for w in inner.split(",")]
    words = [w for w in words if w]
    return list(Config._convert_config_dict(None, {i: w for i, w in enumerate(words)}).values())


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
