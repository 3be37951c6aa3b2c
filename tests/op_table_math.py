"""Op-table records for math ops (issue 17): the new elementwise primitives (erf, log1p,
expm1, floor, ceil, round), cumsum, and the activations, masks, padding and normalisations
composed from them. op_table.py adds them to OP_TABLE."""

from __future__ import annotations

import math

import numpy as np
import scipy.special

import graphjit as gj
from op_table import FLOATS, INTS, REDUCE_SHAPES, UNARY_SHAPES, OpCase

SQRT2 = math.sqrt(2.0)  # (Python floats keep a float32 reference float32)


def _unary(name, fn, ref, domain="real", grad=True, dtypes=FLOATS):
    return OpCase(name, fn, ref, UNARY_SHAPES, (domain,), dtypes, grad)


def _elementwise_cases() -> list[OpCase]:
    rounding = [
        _unary(n, getattr(gj, n), getattr(np, n), grad=False) for n in ("floor", "ceil", "round")
    ]
    integers_unchanged = [
        _unary(f"{n}_int", getattr(gj, n), lambda x: x, "int", False, INTS)
        for n in ("floor", "round")
    ]
    return [
        _unary("erf", gj.erf, scipy.special.erf),
        _unary("log1p", gj.log1p, np.log1p, "positive"),
        _unary("expm1", gj.expm1, np.expm1),
        _unary("rsqrt", gj.rsqrt, lambda x: 1 / np.sqrt(x), "positive"),
        _unary("round(decimals=1)", lambda x: gj.round(x, 1), lambda x: np.round(x, 1), grad=False),
        *rounding,
        *integers_unchanged,
    ]


def _softplus_ref(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


def _gelu_tanh_ref(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _activation_cases() -> list[OpCase]:
    return [
        _unary("gelu", gj.gelu, lambda x: 0.5 * x * (1 + scipy.special.erf(x / SQRT2))),
        _unary("gelu_tanh", lambda x: gj.gelu(x, approximate="tanh"), _gelu_tanh_ref),
        _unary("silu", gj.silu, lambda x: x * scipy.special.expit(x)),
        _unary("softplus", gj.softplus, _softplus_ref),
        _unary(
            "softplus(beta=2)",
            lambda x: gj.softplus(x, beta=2.0),
            lambda x: _softplus_ref(x, beta=2.0),
        ),
        _unary(
            "leaky_relu",
            lambda x: gj.leaky_relu(x, 0.2),
            lambda x: np.where(x > 0, x, 0.2 * x),
            "nonzero",
        ),
        _unary(
            "elu",
            lambda x: gj.elu(x, alpha=1.5),
            lambda x: np.where(x > 0, x, 1.5 * np.expm1(x)),
            "nonzero",
        ),
    ]


def _reverse_cumsum(x, axis):
    return np.flip(np.cumsum(np.flip(x, axis), axis), axis)


def _lead(x):
    return gj.expand_dims(x, 0)


def _shape_cases() -> list[OpCase]:
    return [
        OpCase("cumsum(0)", lambda x: gj.cumsum(x, 0), lambda x: np.cumsum(x, 0), REDUCE_SHAPES),
        OpCase(
            "cumsum(dim=-1)",
            lambda x: gj.cumsum(x, dim=-1),
            lambda x: np.cumsum(x, -1),
            REDUCE_SHAPES,
        ),
        OpCase(
            "cumsum(1, reverse)",
            lambda x: gj.cumsum(x, 1, reverse=True),
            lambda x: _reverse_cumsum(x, 1),
            REDUCE_SHAPES,
        ),
        OpCase(
            "cumsum_int",
            lambda x: gj.cumsum(x, 1),
            lambda x: np.cumsum(x, 1),
            REDUCE_SHAPES,
            ("small_int",),
            INTS,
            grad=False,
        ),
        OpCase("flip", lambda x: gj.flip(x, (0, -1)), lambda x: np.flip(x, (0, -1)), REDUCE_SHAPES),
        # (a leading axis added first: built with known sizes, the mask is a constant and
        # the record would count as elementwise, which the harness feeds rank-1 inputs)
        OpCase(
            "triu", lambda x: gj.triu(_lead(x), 1), lambda x: np.triu(x[None], 1), REDUCE_SHAPES
        ),
        OpCase("tril", lambda x: gj.tril(_lead(x)), lambda x: np.tril(x[None]), REDUCE_SHAPES),
        OpCase(
            "tril_int",
            lambda x: gj.tril(_lead(x), -1),
            lambda x: np.tril(x[None], -1),
            REDUCE_SHAPES,
            ("small_int",),
            INTS,
            grad=False,
        ),  # fmt: skip
        OpCase(
            "pad",
            lambda x: gj.pad(x, (1, 2, 0, 1), value=0.5),
            lambda x: np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, 1), (1, 2)], constant_values=0.5),
            REDUCE_SHAPES,
        ),
        OpCase(
            "pad_crop",
            lambda x: gj.pad(x, (-1, 2)),
            lambda x: np.pad(x[..., 1:], [(0, 0)] * (x.ndim - 1) + [(0, 2)]),
            REDUCE_SHAPES,
        ),
    ]


def _layer_norm_ref(x, n, w=None, b=None, eps=1e-5):
    axes = tuple(range(x.ndim - n, x.ndim))
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


def _per_channel(p, ndim):
    return p.reshape((-1,) + (1,) * (ndim - 2))


def _group_norm_ref(x, groups, w, b, eps=1e-5):
    g = x.reshape(x.shape[0], groups, -1)
    y = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)).reshape(x.shape)
    return y * _per_channel(w, x.ndim) + _per_channel(b, x.ndim)


def _batch_norm_ref(x, mean=None, var=None, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    if mean is None:
        mean, var = x.mean(axes), x.var(axes)
    return (x - _per_channel(mean, x.ndim)) / np.sqrt(_per_channel(var, x.ndim) + eps)


def _normalization_cases() -> list[OpCase]:
    return [
        OpCase(
            "layer_norm",
            lambda x, w, b: gj.layer_norm(x, (4,), w, b),
            lambda x, w, b: _layer_norm_ref(x, 1, w, b),
            [((3, 4), (4,), (4,)), ((2, 3, 4), (4,), (4,))],
        ),
        OpCase(
            "layer_norm_2d",
            lambda x: gj.layer_norm(x, (3, 4)),
            lambda x: _layer_norm_ref(x, 2),
            [((2, 3, 4),)],
        ),
        OpCase(
            "group_norm",
            lambda x, w, b: gj.group_norm(x, 2, w, b),
            lambda x, w, b: _group_norm_ref(x, 2, w, b),
            [((2, 4, 3), (4,), (4,)), ((2, 4, 2, 3), (4,), (4,))],
            dynamic=False,  # the channel count must be known to group channels
        ),
        OpCase(
            "batch_norm_training",
            lambda x: gj.batch_norm(x, None, None, training=True),
            _batch_norm_ref,
            [((4, 3),), ((2, 3, 4),), ((2, 3, 2, 2),)],
        ),
        OpCase(
            "batch_norm_inference",
            lambda x, m, v: gj.batch_norm(x, m, v, training=False),
            _batch_norm_ref,
            [((4, 3), (3,), (3,)), ((2, 3, 2, 2), (3,), (3,))],
            ("real", "real", "positive"),
        ),
    ]


MATH_CASES: list = (
    _elementwise_cases() + _activation_cases() + _shape_cases() + _normalization_cases()
)
