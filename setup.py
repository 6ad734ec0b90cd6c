"""Thin shim for tools that still call setup.py; the project is described in pyproject.toml.

    pip install -e .          (what install.sh does)
    python setup.py develop   (the older habit; same result)
"""

from setuptools import setup

setup()
