"""layer_norm, batch_norm (training statistics, running averages, inference) and group_norm,
with PyTorch's semantics (torch.nn.functional), as compositions of the op functions: their
gradients come from the primitives, to any order. Statistics subtract the mean before
squaring (a two-pass variance), so large offsets do not cancel the variance away.

batch_norm's running statistics in training:

- eager (running_mean/running_var are eager tensors): updated in place at once, outside
  autograd, as PyTorch's buffers are;
- graph (they are gj.Variables): batch_norm builds the `assign`s that update them and
  files them under the graph's update ops, TF1's `tf.GraphKeys.UPDATE_OPS` rule: nothing
  fetched depends on an assign, so a Session runs them only when they are grouped with
  what is run, `train = gj.group(opt.minimize(loss), *gj.update_ops())`. As with every
  assign, the update reads the statistics of the run's batch and the variables' values
  from the start of the run."""

from __future__ import annotations

import math
import operator
import weakref

from graphjit.errors import GraphjitError, ShapeError
from graphjit.frontend.eager_compiled import compiled_when_hot
from graphjit.frontend.graph import Variable, get_default_graph
from graphjit.frontend.ops import add, as_tensor, div, mean, mul, sqrt, square, sub
from graphjit.ir.core import user_location
from graphjit.ir.ops import bind

__all__ = ["batch_norm", "group_norm", "layer_norm", "update_ops"]

# graph -> the assigns that batch_norm built in it (TF1's UPDATE_OPS collection)
_UPDATE_OPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def update_ops(graph=None) -> list:
    """The running-statistics assigns that batch_norm(training=True) built in `graph`
    (default: the default graph), in the order built: group them with the train op."""
    graph = graph if graph is not None else get_default_graph()
    return list(_UPDATE_OPS.get(graph, ()))


def _normalize(x, axes: tuple, eps: float):
    """(x - mean) * rstd over `axes`, rstd = 1 / sqrt(var + eps) with the biased variance
    (as PyTorch computes it); also returns the mean and the variance (dimensions kept) for
    the running statistics. One division per normalised group, not per element: a
    division costs several multiplications, and the gradient of x / s had three more."""
    average = mean(x, axis=axes, keepdims=True)
    centred = sub(x, average)
    variance = mean(square(centred), axis=axes, keepdims=True)
    rstd = div(1.0, sqrt(add(variance, eps)))
    return mul(centred, rstd), average, variance


def _affine(y, weight, bias, shape=None):
    """y * weight + bias (either may be None), each first reshaped to `shape` if given."""
    if weight is not None:
        weight = as_tensor(weight)
        y = mul(y, bind("reshape", weight, shape=shape) if shape else weight)
    if bias is not None:
        bias = as_tensor(bias)
        y = add(y, bind("reshape", bias, shape=shape) if shape else bias)
    return y


@compiled_when_hot
def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalise over the last len(normalized_shape) axes, then scale by `weight` and shift
    by `bias` (of shape normalized_shape) elementwise (torch.nn.functional.layer_norm)."""
    x = as_tensor(input)
    shape = _shape_tuple(normalized_shape)
    if len(shape) > x.ndim or any(
        d is not None and d != s for d, s in zip(x.shape[x.ndim - len(shape) :], shape)
    ):
        raise ShapeError(
            f"layer_norm: normalized_shape {shape} does not match the last axes of an "
            f"input of shape {tuple(x.shape)}",
            location=user_location(),
        )
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    y = _normalize(x, axes, eps)[0] if axes else x
    return _affine(y, weight, bias)


def _shape_tuple(shape) -> tuple:
    if isinstance(shape, int) or not hasattr(shape, "__iter__"):
        return (operator.index(shape),)
    return tuple(operator.index(d) for d in shape)


def _channels(x, what: str) -> int | None:
    if x.ndim < 2:
        raise ShapeError(
            f"{what} needs an input of shape (N, C, ...), got rank {x.ndim}",
            location=user_location(),
        )
    return x.shape[1]


def _per_channel_shape(x) -> tuple:
    """How a (C,) parameter is reshaped to broadcast over (N, C, ...)."""
    return (-1,) + (1,) * (x.ndim - 2)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Split the C channels of an (N, C, ...) input into `num_groups` groups and normalise
    each group of each sample over its channels and positions; `weight` and `bias` are per
    channel (torch.nn.functional.group_norm)."""
    x = as_tensor(input)
    channels, groups = _channels(x, "group_norm"), operator.index(num_groups)
    if channels is None or groups <= 0 or channels % groups:
        raise ShapeError(
            f"group_norm: {channels} channels cannot be split into {num_groups} groups "
            "(the channel count must be known and divisible)",
            location=user_location(),
        )
    rest = x.shape[2:]
    if None in rest and x.shape[0] is None:
        raise ShapeError(
            "group_norm: needs the batch size or the spatial sizes known to group channels",
            location=user_location(),
        )
    if None in rest:
        grouped = bind("reshape", x, shape=(x.shape[0], groups, -1))
    else:
        grouped = bind("reshape", x, shape=(-1, groups, channels // groups, *rest))
    axes = tuple(range(2, grouped.ndim))
    y = bind("reshape_like", _normalize(grouped, axes, eps)[0], x)
    return _affine(y, weight, bias, _per_channel_shape(x))


def batch_norm(
    input,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
):
    """Normalise each channel of an (N, C, ...) input (torch.nn.functional.batch_norm).

    training=True: with the batch's statistics over every axis but 1 (biased variance),
    and, when running_mean/running_var are given, moves them towards the batch's mean and
    unbiased variance by `momentum` (new = (1 - momentum) * old + momentum * batch): eager
    tensors in place, gj.Variables by assigns listed in `update_ops()` (see the module's
    docstring). training=False: with running_mean and running_var."""
    x = as_tensor(input)
    _channels(x, "batch_norm")
    per_channel = _per_channel_shape(x)
    if not training:
        if running_mean is None or running_var is None:
            raise GraphjitError(
                "batch_norm: inference (training=False) needs running_mean and running_var",
                location=user_location(),
            )
        centred = sub(x, bind("reshape", as_tensor(running_mean), shape=per_channel))
        scale = sqrt(add(bind("reshape", as_tensor(running_var), shape=per_channel), eps))
        return _affine(div(centred, scale), weight, bias, per_channel)
    axes = (0,) + tuple(range(2, x.ndim))
    _more_than_one_value_per_channel(x, axes)
    y, batch_mean, batch_var = _normalize(x, axes, eps)
    if running_mean is not None or running_var is not None:
        n = bind("count", x, axes=axes)
        unbiased = div(mul(batch_var, n), sub(n, 1))  # (PyTorch's running variance)
        for running, batch in [(running_mean, batch_mean), (running_var, unbiased)]:
            if running is not None:
                _update_running(running, bind("reshape", batch, shape=(-1,)), momentum)
    return _affine(y, weight, bias, per_channel)


def _more_than_one_value_per_channel(x, axes) -> None:
    """A batch of one value per channel has no variance to normalise by: its output is 0
    and its unbiased variance NaN, which the running statistics would keep. PyTorch
    refuses it; so does this, where the shape is known when the op is built."""
    sizes = [x.shape[a] for a in axes]
    if None not in sizes and math.prod(sizes) == 1:
        raise ShapeError(
            f"batch_norm: expected more than 1 value per channel when training, got input "
            f"of shape {tuple(x.shape)}",
            location=user_location(),
        )


def _update_running(running, batch, momentum: float) -> None:
    """running <- (1 - momentum) * running + momentum * batch: in place for an eager tensor
    (outside autograd), an assign filed under update_ops() for a gj.Variable."""
    from graphjit.frontend.eager.grad_mode import no_grad
    from graphjit.frontend.eager.tensor import Tensor

    if isinstance(running, Tensor):
        with no_grad():
            running.copy_(add(mul(running, 1.0 - momentum), mul(batch.detach(), momentum)))
        return
    if not isinstance(running, Variable):
        raise GraphjitError(
            "batch_norm(training=True) updates running_mean/running_var: in a graph they "
            f"must be gj.Variables (or None), got {type(running).__name__}",
            location=user_location(),
        )
    new = add(mul(running.value, 1.0 - momentum), mul(batch, momentum))
    _UPDATE_OPS.setdefault(running.graph, []).append(running.assign(new))
