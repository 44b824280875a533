"""Build script: lists the compiled extensions; metadata lives in pyproject.toml."""
from setuptools import setup

setup()
