"""Op-table records for TensorFlow 1's names, called with TF1's argument names.
op_table.py adds them to OP_TABLE."""

from __future__ import annotations

import numpy as np
import scipy.special

import graphjit as gj
from op_table import INTS, REDUCE_SHAPES, UNARY_SHAPES, OpCase

BOOL = ("bool",)
LOGITS_AND_LABELS = [((5, 4), (5,)), ((2, 3, 4), (2, 3))]


def _reduction(name, ref, axis, keepdims=False, shapes=REDUCE_SHAPES, **kw) -> OpCase:
    return OpCase(
        f"{name}(axis={axis}, keepdims={keepdims})",
        lambda x: getattr(gj, name)(x, axis=axis, keepdims=keepdims),
        lambda x: np.asarray(ref(x, axis=_np_axis(axis), keepdims=keepdims)),
        shapes,
        **kw,
    )


def _np_axis(axis):
    """TF1 takes a list of axes where NumPy wants a tuple."""
    return tuple(axis) if isinstance(axis, list) else axis


def _int_sum(x, axis, keepdims):
    return np.sum(x, axis=axis, keepdims=keepdims).astype(x.dtype)


def _int_mean(x, axis, keepdims):
    """TF1's integer mean: the integer quotient, truncated toward zero, in x's dtype."""
    return np.trunc(np.mean(x, axis=axis, keepdims=keepdims)).astype(x.dtype)


def _int_prod(x, axis, keepdims):
    return np.prod(x, axis=axis, keepdims=keepdims).astype(x.dtype)


def _sigmoid_xent(z, x):
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def _sparse_xent(z, y):
    logp = scipy.special.log_softmax(z, axis=-1)
    return -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]


def _dense_xent(p, z, axis=-1):
    return -np.sum(p * scipy.special.log_softmax(z, axis=axis), axis=axis)


def _split_sizes_ref(x):
    return np.split(x, [1, x.shape[-1] - 2], axis=-1)[1]


def _clip_ref(a, b, clip_norm):
    norm = np.sqrt(np.sum(a**2) + np.sum(b**2))
    return b * clip_norm / max(norm, clip_norm)


def _case(x):
    total = gj.reduce_sum(x)
    return gj.case(
        [(total > 1.0, lambda: x * 2.0), (total < -1.0, lambda: -x)], default=lambda: x + 1.0
    )


def _case_ref(x):
    total = np.sum(x)
    return x * 2.0 if total > 1.0 else (-x if total < -1.0 else x + 1.0)


TF1_CASES: list = [
    # reductions, with TF1's spellings of axis and keepdims
    *[
        _reduction(n, f, a, k)
        for n, f in [("reduce_sum", np.sum), ("reduce_mean", np.mean)]
        for a, k in [(None, False), (1, True), ([0, -1], False)]
    ],
    *[
        _reduction(n, f, a, k)
        for n, f in [("reduce_max", np.max), ("reduce_min", np.min)]
        for a, k in [(None, False), (-1, True)]
    ],
    _reduction("reduce_prod", np.prod, 1, shapes=REDUCE_SHAPES, domains=("nonzero",)),
    _reduction("reduce_prod", np.prod, None, True, shapes=[((2, 3),)], domains=("nonzero",)),
    _reduction(
        "reduce_logsumexp", scipy.special.logsumexp, -1, keepdims=True, shapes=REDUCE_SHAPES
    ),
    *[
        _reduction(n, f, 0, shapes=REDUCE_SHAPES, domains=("small_int",), dtypes=INTS, grad=False)
        for n, f in [
            ("reduce_sum", _int_sum),
            ("reduce_mean", _int_mean),
            ("reduce_prod", _int_prod),
        ]
    ],
    *[
        _reduction(n, f, a, shapes=REDUCE_SHAPES, domains=BOOL, dtypes=BOOL, grad=False)
        for n, f in [("reduce_any", np.any), ("reduce_all", np.all)]
        for a in [None, 1]
    ],
    OpCase(
        "reduce_sum(reduction_indices=[1], keep_dims=True)",
        lambda x: gj.reduce_sum(x, reduction_indices=[1], keep_dims=True),
        lambda x: np.sum(x, axis=1, keepdims=True),
        REDUCE_SHAPES,
    ),
    # shapes
    OpCase(
        "shape",
        lambda x: gj.shape(x),
        lambda x: np.array(x.shape, np.int32),
        UNARY_SHAPES,
        grad=False,
    ),
    OpCase(
        "shape(out_type=int64)",
        lambda x: gj.shape(x, out_type=gj.int64),
        lambda x: np.array(x.shape, np.int64),
        [((3, 4),)],
        grad=False,
    ),
    OpCase("size", gj.size, lambda x: np.int32(x.size), UNARY_SHAPES, grad=False),
    OpCase("rank", gj.rank, lambda x: np.int32(x.ndim), UNARY_SHAPES, grad=False),
    OpCase("identity", lambda x: gj.identity(x, name="same"), lambda x: x, UNARY_SHAPES),
    OpCase(
        "split(num_or_size_splits=2, axis=1)",
        lambda x: gj.split(x, num_or_size_splits=2, axis=1)[1],
        lambda x: np.split(x, 2, axis=1)[1],
        [((3, 4),), ((2, 6, 3),)],
        dynamic=False,  # equal pieces need the axis size
    ),
    OpCase(
        "split(value, [1, -1, 2], axis=-1)",
        lambda x: gj.split(value=x, num_or_size_splits=[1, -1, 2], axis=-1)[1],
        _split_sizes_ref,
        [((3, 5),), ((2, 3, 4),)],
    ),
    OpCase(
        "split(value, [1, -1, 2], axis=-1)[2]",
        lambda x: gj.split(x, [1, -1, 2], axis=-1)[2],
        lambda x: x[..., -2:],
        [((3, 5),)],
    ),
    OpCase(
        "unstack(num=3, axis=1)",
        lambda x: gj.unstack(x, num=3, axis=1)[2],
        lambda x: x[:, 2],
        [((4, 3),), ((2, 3, 4),)],
    ),
    OpCase(
        "unstack(axis=-1)",
        lambda x: gj.unstack(x, axis=-1)[0],
        lambda x: x[..., 0],
        [((4, 3),)],
        dynamic=False,  # without num the axis size must be known
    ),
    OpCase(
        "tile(multiples=[2, 1, 3])",
        lambda x: gj.tile(x, multiples=[2, 1, 3]),
        lambda x: np.tile(x, [2, 1, 3]),
        [((2, 3, 4),), ((1, 2, 1),)],
    ),
    OpCase(
        "tile(multiples=[0, 2])",
        lambda x: gj.tile(x, [0, 2]),
        lambda x: np.tile(x, [0, 2]),
        [((3, 4),)],
    ),
    # clipping
    OpCase(
        "clip_by_value(clip_value_min=-0.5, clip_value_max=0.7)",
        lambda t: gj.clip_by_value(t, clip_value_min=-0.5, clip_value_max=0.7),
        lambda t: np.clip(t, -0.5, 0.7),
        UNARY_SHAPES,
    ),
    OpCase(
        "clip_by_global_norm(clip_norm=1.5)",
        lambda a, b: gj.clip_by_global_norm([a, None, b], clip_norm=1.5)[0][2],
        lambda a, b: _clip_ref(a, b, 1.5),
        [((3, 4), (5,)), ((2,), ())],
    ),
    OpCase(
        "clip_by_global_norm(clip_norm=50) leaves them",
        lambda a, b: gj.clip_by_global_norm([a, b], 50.0)[0][0],
        lambda a, b: a,
        [((3, 4), (5,))],
    ),
    OpCase(
        "global_norm",
        lambda a, b: gj.clip_by_global_norm([a, b], 1.0)[1],
        lambda a, b: np.sqrt(np.sum(a**2) + np.sum(b**2)),
        [((3, 4), (5,))],
    ),
    OpCase("case", _case, _case_ref, [((3,),), ((2, 2),)]),
    # losses (TF1's keyword-only labels= and logits=)
    OpCase(
        "sparse_softmax_cross_entropy_with_logits",
        lambda z, y: gj.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z),
        _sparse_xent,
        LOGITS_AND_LABELS,
        ("real", "label"),
        fixed={1: "int64"},
        dynamic=False,  # the number of classes must be known
    ),
    OpCase(
        "softmax_cross_entropy_with_logits_v2",
        lambda p, z: gj.nn.softmax_cross_entropy_with_logits_v2(labels=p, logits=z),
        _dense_xent,
        [((5, 4), (5, 4)), ((2, 3, 4), (2, 3, 4))],
        ("positive", "real"),
    ),
    OpCase(
        "softmax_cross_entropy_with_logits_v2(axis=0)",
        lambda p, z: gj.nn.softmax_cross_entropy_with_logits_v2(labels=p, logits=z, axis=0),
        lambda p, z: _dense_xent(p, z, axis=0),
        [((5, 4), (5, 4))],
        ("positive", "real"),
    ),
    OpCase(
        # the deprecated form stops gradients into labels: checked in test_tf1_names.py
        "softmax_cross_entropy_with_logits",
        lambda p, z: gj.nn.softmax_cross_entropy_with_logits(labels=p, logits=z),
        _dense_xent,
        [((5, 4), (5, 4))],
        ("positive", "real"),
        grad=False,
    ),
    OpCase(
        # one input: labels and logits must have one shape (TF1), and two-input elementwise
        # records are also run broadcast; gradients into labels: test_tf1_names.py
        "sigmoid_cross_entropy_with_logits",
        lambda x: gj.nn.sigmoid_cross_entropy_with_logits(
            labels=gj.cast(x > 0.3, x.dtype), logits=x
        ),
        lambda x: _sigmoid_xent((x > 0.3).astype(x.dtype), x),
        UNARY_SHAPES,
    ),
    OpCase("l2_loss", gj.nn.l2_loss, lambda t: np.sum(t**2) / 2, UNARY_SHAPES),
    OpCase(
        "softmax_cross_entropy(reduction='none')",
        lambda z, y: gj.softmax_cross_entropy(z, y, reduction="none"),
        _sparse_xent,
        LOGITS_AND_LABELS,
        ("real", "label"),
        fixed={1: "int64"},
        dynamic=False,
    ),
    OpCase(
        "softmax_cross_entropy(probabilities, reduction='sum')",
        lambda z, p: gj.softmax_cross_entropy(z, p, reduction="sum"),
        lambda z, p: np.sum(_dense_xent(p, z)),
        [((5, 4), (5, 4))],
        ("real", "positive"),
    ),
]
