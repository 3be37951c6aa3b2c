"""Activations and elementwise math beyond the core set: gelu, silu, softplus, leaky_relu, elu,
erf, log1p, expm1, rsqrt, floor, ceil, round, cumsum, flip, triu/tril, pad."""

from __future__ import annotations

__all__: list[str] = []
