"""Loss functions: softmax cross entropy in PyTorch's and TensorFlow 1's forms, the sigmoid
and L2 losses, and PyTorch's nll_loss, binary_cross_entropy (with logits), l1_loss and
smooth_l1_loss (exported by gj.nn and gj.nn.functional only, not in `__all__`).

Compositions of the op functions both modes share, so each works on graph values and eager
tensors and is differentiated through its primitives. The TF1 forms return one loss per
example, as TF1 does; `softmax_cross_entropy` reduces as PyTorch's `cross_entropy` does."""

from __future__ import annotations

import numpy as np

from graphjit.errors import DTypeError, GraphjitError, ShapeError
from graphjit.frontend import ops, shape_ops
from graphjit.frontend.activations import log1p
from graphjit.frontend.convert import constant_like, is_tensor, unwrap
from graphjit.frontend.graph import named
from graphjit.frontend.indexing import gather
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


# ---- PyTorch's torch.nn.functional losses (exported by gj.nn and gj.nn.functional) --------


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """PyTorch's F.nll_loss: -input[n, target[n]] for log-probabilities `input` of shape
    (N, C), (N, C, d1, ...) or (C,), `target` integer class indices (the input's shape
    without axis C). A target equal to `ignore_index` contributes nothing; one out of range
    gives NaN (PyTorch raises). `weight`: one weight per class, multiplying each loss;
    "mean" divides by the weights (the count) of the examples not ignored, as PyTorch."""
    _check_reduction(reduction)
    log_probs = as_tensor(input)
    if log_probs.ndim > 2:  # (N, C, d1, ...) -> (N, d1, ..., C)
        log_probs = shape_ops.transpose(log_probs, (0, *range(2, log_probs.ndim), 1))
    labels = _labels(target, log_probs)
    if not labels.dtype.is_integer:
        raise DTypeError(
            f"nll_loss needs integer class indices, got {labels.dtype.name}",
            location=user_location(),
        )
    depth = log_probs.shape[-1]
    if depth is None:
        raise ShapeError("nll_loss needs the number of classes known", location=user_location())
    _class_index_shape(labels, log_probs)
    kept = ops.not_equal(labels, ignore_index)
    losses = _picked(log_probs, labels, depth, kept)
    if weight is None:
        weights = ops.cast(kept, losses.dtype)
    else:  # (each example's class weight; 0 where ignored, the class clamped into range)
        safe = ops.minimum(ops.maximum(labels, 0), depth - 1)
        weights = ops.where(kept, ops.cast(gather(weight, safe), losses.dtype), 0.0)
        losses = ops.mul(losses, weights)
    if reduction == "mean":
        return ops.div(ops.sum(losses), ops.sum(weights))
    return _reduce(losses, reduction)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """PyTorch's F.binary_cross_entropy: -(t * log(p) + (1 - t) * log(1 - p)) for
    probabilities p = `input`, each log clamped to >= -100 as PyTorch's (so p = 0 or 1 gives
    a finite loss); `weight` multiplies each loss. A p outside [0, 1] gives NaN (PyTorch
    raises). Where p is 0 or 1 the clamped log is constant, so its gradient is 0 there
    (PyTorch's backward writes (p - t) / max(p (1 - p), 1e-12) instead)."""
    _check_reduction(reduction)
    p = as_tensor(input)
    t = _float_labels(target, p)
    _same_shape("binary_cross_entropy", t, p)
    log_p, log_q = _clamped_log(p), _clamped_log(ops.sub(1, p))
    losses = ops.neg(ops.add(ops.mul(t, log_p), ops.mul(ops.sub(1, t), log_q)))
    return _weighted(losses, weight, reduction)


def _clamped_log(v):
    """max(log(v), -100), with gradient 0 where v is 0 (not 0 * inf = NaN): the log is taken
    of a placeholder 1 there. NaN where v < 0."""
    positive = ops.greater(v, 0)
    inside = ops.maximum(ops.log(ops.where(positive, v, 1)), -100)
    at_zero = ops.where(ops.equal(v, 0), constant_like(-100, v.dtype, [v]), np.nan)
    return ops.where(positive, inside, at_zero)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """PyTorch's F.binary_cross_entropy_with_logits: binary cross entropy of sigmoid(x),
    computed stably as TF1's sigmoid_cross_entropy_with_logits is, max(x, 0) - x t +
    log1p(exp(-|x|)); `pos_weight` w (broadcast against the target: one per class, last)
    weighs the positive term, (1 - t) x + (1 + (w - 1) t) log(1 + exp(-x)), and `weight`
    multiplies each loss."""
    _check_reduction(reduction)
    x = as_tensor(input)
    t = _float_labels(target, x)
    _same_shape("binary_cross_entropy_with_logits", t, x)
    # max(x, 0), max(-x, 0) and -|x| from one select on x >= 0, so that at x = 0 the
    # gradient is exactly sigmoid(0) - t, as for sigmoid_cross_entropy_with_logits
    nonnegative = ops.greater_equal(x, 0)
    neg_x = ops.neg(x)
    log_term = log1p(ops.exp(ops.where(nonnegative, neg_x, x)))
    losses = ops.sub(ops.where(nonnegative, x, 0), ops.mul(x, t))
    if pos_weight is None:
        return _weighted(ops.add(losses, log_term), weight, reduction)
    extra = ops.mul(ops.sub(_float_labels(pos_weight, x), 1), t)  # (w - 1) t
    log_term = ops.add(
        log_term, ops.mul(extra, ops.add(log_term, ops.where(nonnegative, 0, neg_x)))
    )
    return _weighted(ops.add(losses, log_term), weight, reduction)


def _weighted(losses, weight, reduction: str):
    """The losses times `weight` (if given, in their dtype), reduced."""
    if weight is not None:
        losses = ops.mul(losses, _float_labels(weight, losses))
    return _reduce(losses, reduction)


def l1_loss(input, target, reduction="mean"):
    """PyTorch's F.l1_loss: |input - target|, averaged ("mean"), summed or not ("none")."""
    _check_reduction(reduction)
    return _reduce(ops.abs(ops.sub(input, target)), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """PyTorch's F.smooth_l1_loss (Huber's loss over beta): 0.5 d ** 2 / beta where |d| <
    beta, else |d| - 0.5 beta, for d = input - target; beta = 0 is the L1 loss."""
    _check_reduction(reduction)
    if beta < 0:
        raise GraphjitError(
            f"smooth_l1_loss: beta must be >= 0, got {beta}", location=user_location()
        )
    d = ops.sub(input, target)
    magnitude = ops.abs(d)
    if beta == 0:
        return _reduce(magnitude, reduction)
    quadratic = ops.div(ops.mul(ops.square(d), 0.5), beta)
    linear = ops.sub(magnitude, 0.5 * beta)
    return _reduce(ops.where(ops.less(magnitude, beta), quadratic, linear), reduction)


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
    return _picked(ops.log_softmax(logits), labels, depth, kept)


def _picked(log_probs, labels, depth: int, kept=None):
    """-log_probs[label] per example (the classes last); NaN where the label is out of
    range, 0 where `kept` (if given) does not hold."""
    # Selected, not multiplied by a one-hot row: a masked-out class's log-probability is
    # -inf, and 0 * -inf would make the example's loss NaN.
    is_label = ops.one_hot(labels, depth, dtype="bool")
    picked = ops.neg(ops.sum(ops.where(is_label, log_probs, 0.0), axis=-1))
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
