"""Eager mode (define-by-run): exported names are listed in __all__ (being built)."""

__all__: list[str] = []
