"""Loss functions: softmax cross entropy in PyTorch's and TensorFlow 1's forms, and the
sigmoid and L2 losses.

Compositions of the op functions both modes share, so each works on graph values and eager
tensors and is differentiated through its primitives. The TF1 forms return one loss per
example, as TF1 does; `softmax_cross_entropy` reduces as PyTorch's `cross_entropy` does."""

from __future__ import annotations

import numpy as np

from graphjit.errors import DTypeError, GraphjitError, ShapeError
from graphjit.frontend import ops
from graphjit.frontend.convert import constant_like, is_tensor, unwrap
from graphjit.frontend.graph import named
from graphjit.frontend.ops import as_tensor
from graphjit.ir.core import user_location
from graphjit.ir.types import int64

__all__ = [
    "l2_loss", "sigmoid_cross_entropy_with_logits", "softmax_cross_entropy",
    "softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
    "sparse_softmax_cross_entropy_with_logits",
]  # fmt: skip


def softmax_cross_entropy(logits, labels, reduction="mean", ignore_index=-100):
    """Cross entropy of softmax(logits) over the last axis, as PyTorch's `cross_entropy`:
    `labels` are integer class indices (logits' shape without the last axis; an index equal
    to `ignore_index` contributes nothing, an index out of range gives NaN) or float
    probabilities such as one-hot rows (logits' shape). `reduction`: "mean" (over the
    examples not ignored), "sum" or "none" (one loss per example)."""
    _check_reduction(reduction)
    logits = as_tensor(logits)
    labels = _labels(labels, logits)
    if labels.dtype.is_floating:
        return _reduce(_dense(logits, labels, axis=-1), reduction)
    kept = ops.not_equal(labels, ignore_index)
    losses = _sparse(logits, labels, kept=kept)
    if reduction == "mean":  # over the examples not ignored, as PyTorch
        return ops.div(ops.sum(losses), ops.sum(ops.cast(kept, logits.dtype)))
    return _reduce(losses, reduction)


def softmax_cross_entropy_with_logits(*, labels, logits, dim=-1, name=None, axis=None):
    """TF1's deprecated form: one loss per example, -sum(labels * log_softmax(logits)) along
    `axis` (or `dim`); no gradient flows into `labels` (use the _v2 form for that)."""
    logits = as_tensor(logits)
    labels = ops.stop_gradient(_float_labels(labels, logits))
    return named(_dense(logits, labels, axis=dim if axis is None else axis), name)


def softmax_cross_entropy_with_logits_v2(labels, logits, axis=-1, name=None, dim=None):
    """TF1's tf.nn.softmax_cross_entropy_with_logits_v2: one loss per example, with
    gradients into both logits and labels."""
    logits = as_tensor(logits)
    labels = _float_labels(labels, logits)
    return named(_dense(logits, labels, axis=axis if dim is None else dim), name)


def sparse_softmax_cross_entropy_with_logits(*, labels, logits, name=None):
    """TF1's form: one loss per example for integer class `labels` (logits' shape without
    the last axis); a label out of range gives NaN (TF1 raises on CPU, gives NaN on GPU)."""
    logits = as_tensor(logits)
    labels = _labels(labels, logits)
    if not labels.dtype.is_integer:
        raise DTypeError(
            f"sparse_softmax_cross_entropy_with_logits needs integer labels, got "
            f"{labels.dtype.name} (use softmax_cross_entropy_with_logits_v2 for probabilities)",
            location=user_location(),
        )
    return named(_sparse(logits, labels), name)


def sigmoid_cross_entropy_with_logits(*, labels, logits, name=None):
    """TF1's elementwise logistic loss, in TF1's stable form
    max(x, 0) - x * z + log(1 + exp(-|x|)), with x the logits and z the labels."""
    logits = as_tensor(logits)
    labels = _float_labels(labels, logits)
    _same_shape("sigmoid_cross_entropy_with_logits", labels, logits)
    # TF1 writes relu and -|x| with one select on x >= 0, so that at x = 0 the gradient is
    # sigmoid(0) - z exactly (separate relu and abs gradients would disagree there)
    nonnegative = ops.greater_equal(logits, 0)
    relu_logits = ops.where(nonnegative, logits, 0)
    neg_abs_logits = ops.where(nonnegative, ops.neg(logits), logits)
    softplus = ops.log(ops.add(ops.exp(neg_abs_logits), 1))
    return named(ops.add(ops.sub(relu_logits, ops.mul(logits, labels)), softplus), name)


def l2_loss(t, name=None):
    """sum(t ** 2) / 2, as TF1's tf.nn.l2_loss."""
    t = as_tensor(t)
    return named(ops.div(ops.sum(ops.square(t)), 2), name)


# ---- parts ---------------------------------------------------------------------------------


def _check_reduction(reduction) -> None:
    if reduction not in ("none", "mean", "sum"):
        raise GraphjitError(
            f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}",
            location=user_location(),
        )


def _reduce(losses, reduction: str):
    if reduction == "mean":
        return ops.mean(losses)
    return ops.sum(losses) if reduction == "sum" else losses


def _labels(labels, logits):
    """`labels` as a tensor in the mode of `logits`: integers as int64 class indices, floats
    in the logits' dtype (probabilities)."""
    labels = unwrap(labels)
    if not is_tensor(labels):
        kind = np.asarray(labels).dtype.kind
        if kind not in "iuf":
            raise DTypeError(
                f"labels must be integer class indices or float probabilities, got {labels!r}",
                location=user_location(),
            )
        return constant_like(labels, int64 if kind in "iu" else logits.dtype, [logits])
    if labels.dtype.is_floating:
        return ops.cast(labels, logits.dtype)
    if not labels.dtype.is_integer:
        raise DTypeError(
            f"labels must be integer class indices or float probabilities, got {labels.dtype.name}",
            location=user_location(),
        )
    return labels


def _float_labels(labels, logits):
    """Probabilities (or any numbers) in the logits' dtype, in the logits' mode."""
    return constant_like(unwrap(labels), logits.dtype, [logits])


def _dense(logits, labels, axis):
    """-sum(labels * log_softmax(logits)) along `axis`, for labels of the logits' shape."""
    _same_shape("softmax cross entropy with probabilities", labels, logits)
    return ops.neg(ops.sum(ops.mul(labels, ops.log_softmax(logits, axis=axis)), axis=axis))


def _sparse(logits, labels, kept=None):
    """-log_softmax(logits)[label] per example; NaN where the label is out of range, so a
    bad label shows instead of silently costing nothing; 0 where `kept` (if given) does not
    hold."""
    depth = logits.shape[-1]
    if depth is None:
        raise ShapeError(
            "softmax cross entropy with class indices needs the number of classes (the "
            "logits' last dimension) known",
            location=user_location(),
        )
    _class_index_shape(labels, logits)
    # Selected, not multiplied by a one-hot row: a masked-out class's log-probability is
    # -inf, and 0 * -inf would make the example's loss NaN.
    is_label = ops.one_hot(labels, depth, dtype="bool")
    picked = ops.neg(ops.sum(ops.where(is_label, ops.log_softmax(logits), 0.0), axis=-1))
    in_range = ops.logical_and(ops.greater_equal(labels, 0), ops.less(labels, depth))
    if kept is None:
        return ops.where(in_range, picked, np.nan)
    # one select on the differentiated path; what replaces the loss depends on labels only
    # (written with `kept` itself, not its negation: two ops fewer, the same values)
    fill = ops.where(kept, np.nan, 0.0)
    return ops.where(ops.logical_and(in_range, kept), picked, fill)


def _class_index_shape(labels, logits) -> None:
    """Integer labels have the logits' shape without the class axis: anything else would
    broadcast into a loss of the wrong shape without an error."""
    expected = logits.shape[:-1]
    if labels.ndim != len(expected) or not _dims_agree(labels.shape, expected):
        raise ShapeError(
            f"integer labels of shape {labels.shape} for logits of shape {logits.shape}: "
            f"class indices must have shape {expected} (one per example)",
            location=user_location(),
        )


def _same_shape(what: str, labels, logits) -> None:
    if labels.ndim != logits.ndim or not _dims_agree(labels.shape, logits.shape):
        raise ShapeError(
            f"{what}: labels of shape {labels.shape} must have the logits' shape {logits.shape}",
            location=user_location(),
        )


def _dims_agree(a, b) -> bool:
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))
