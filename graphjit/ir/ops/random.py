"""Random numbers in graphs from a counter-based generator (Philox 4x32-10, as JAX and PyTorch use):
the same seed and step give the same numbers on the interpreter, llvm, cuda and eager."""

from __future__ import annotations
