"""`gj.nn.utils`: gradient clipping (PyTorch's torch.nn.utils), applied to `.grad` in place."""

from __future__ import annotations

import numpy as np

from graphjit.frontend.eager.tensor import Tensor, bump_version, wrap


def _with_grads(parameters) -> list:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def zero_grads(parameters, set_to_none: bool = True) -> None:
    for p in _with_grads(parameters):
        if set_to_none:
            p.grad = None
        else:
            p.grad._data[...] = 0
            bump_version(p.grad)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> Tensor:
    """Scale all gradients together so that their joint norm is at most max_norm; returns the
    norm before clipping. As PyTorch: scale by min(1, max_norm / (norm + 1e-6))."""
    params = _with_grads(parameters)
    if not params:
        return wrap(np.asarray(0.0, dtype=np.float32))
    grads = [p.grad._data for p in params]
    with np.errstate(all="ignore"):  # (an inf or NaN gradient: IEEE results, no warnings)
        if norm_type == float("inf"):  # (np.max, not max(): a NaN wins wherever it is)
            total = float(np.max([np.max(np.abs(g)) if g.size else 0.0 for g in grads]))
        else:
            total = float(sum(np.sum(np.abs(g.astype(np.float64)) ** norm_type) for g in grads))
            total = total ** (1.0 / norm_type)
        scale = max_norm / (total + 1e-6)
        scale = scale if not scale >= 1.0 else 1.0  # (PyTorch's clamp: a NaN norm scales by NaN)
        for p in params:
            p.grad._data *= p.grad._data.dtype.type(scale)
            bump_version(p.grad)
    return wrap(np.asarray(total, dtype=grads[0].dtype))


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value]."""
    for p in _with_grads(parameters):
        np.clip(p.grad._data, -clip_value, clip_value, out=p.grad._data)
        bump_version(p.grad)
