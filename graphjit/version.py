"""graphjit's version, in a module of its own so that code below the package root (the
compile cache's keys) can read it without importing graphjit/__init__.py."""

__version__ = "0.1.0"
