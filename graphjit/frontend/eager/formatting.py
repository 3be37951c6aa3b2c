"""`repr` of eager tensors in PyTorch's style: `tensor([12.])`, `tensor([ 1.5000, 20.2500])`."""

from __future__ import annotations

import numpy as np

from graphjit.ir.types import is_float_array

# dtypes PyTorch leaves unnamed in a repr: its defaults for Python floats, ints and bools
_DEFAULT_DTYPES = {np.dtype(np.float32), np.dtype(np.int64), np.dtype(np.bool_)}


def _float_spec(finite: np.ndarray) -> tuple[str, str]:
    """PyTorch's choice: integral values as `12.`, a wide range in scientific notation,
    otherwise four decimals."""
    magnitudes = np.abs(finite).astype(np.float64)
    nonzero = magnitudes[magnitudes != 0]
    if magnitudes.size and np.all(magnitudes == np.round(magnitudes)) and magnitudes.max() < 1e8:
        return ".0f", "."
    if nonzero.size and (
        nonzero.max() / nonzero.min() > 1000 or nonzero.max() > 1e8 or nonzero.min() < 1e-4
    ):
        return ".4e", ""
    return ".4f", ""


def float_formatter(array: np.ndarray):
    finite = array[np.isfinite(array)]
    spec, suffix = _float_spec(finite)

    def text(v) -> str:
        return f"{v:{spec}}{suffix}" if np.isfinite(v) else str(float(v))

    # Every element is padded to the width of the widest finite value (as PyTorch does); that
    # is an extreme value, so formatting just those keeps repr fast for large tensors.
    extremes = [finite.max(), finite.min()] if finite.size else []
    width = max((len(text(v)) for v in extremes), default=0)
    return lambda v: text(v).rjust(width)


def format_tensor(array: np.ndarray, extras: list[str]) -> str:
    if is_float_array(array) and array.dtype.kind != "f":  # bfloat16: NumPy's kind is "V"
        array_shown = array.astype(np.float32)  # (exact: every bfloat16 is a float32)
    else:
        array_shown = array
    formatter = {"float_kind": float_formatter(array_shown)} if is_float_array(array) else None
    body = np.array2string(array_shown, separator=", ", prefix="tensor(", formatter=formatter)
    if array.dtype not in _DEFAULT_DTYPES:
        extras = [f"dtype=gj.{array.dtype.name}"] + extras
    return "tensor(" + ", ".join([body] + extras) + ")"
