"""Row-wise normalisations over the last axis of a rows x cols float32 matrix: softmax and
layer norm (weight and bias of length cols, eps 1e-5), forward alone or with the gradient
for an upstream cotangent `dy` (`softmax_grad`: y and dx; `layernorm_grad`: y, dx,
dweight and dbias). What they measure is how a backend runs reductions along rows with
their elementwise neighbours: the row max, sum and mean, and the passes over memory
between them (issue 18)."""

from __future__ import annotations

import numpy as np

from graphjit.bench import peers
from graphjit.bench.core import Prepared, Workload
from graphjit.bench.workloads.common import (
    F32,
    gj_session,
    jax_call,
    rng,
    standard_builders,
    tf1_session,
    torch_jit,
    torch_tensors,
)

EPS = 1e-5


def make_data(params: dict) -> dict:
    generator = rng(18)
    rows, cols = params["rows"], params["cols"]
    return {
        "x": (2 * generator.normal(size=(rows, cols))).astype(F32),
        "dy": generator.normal(size=(rows, cols)).astype(F32),
        "weight": (1 + 0.1 * generator.normal(size=cols)).astype(F32),
        "bias": (0.1 * generator.normal(size=cols)).astype(F32),
    }


# ---- NumPy: the reference, gradients written out -----------------------------------------


def _np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_layer_norm(x, weight, bias):
    centred = x - x.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt((centred * centred).mean(-1, keepdims=True) + F32(EPS))
    normed = centred * rstd
    return normed * weight + bias, normed, rstd


def build_numpy(data: dict, op: str, grad: bool) -> Prepared:
    x, dy, weight, bias = data["x"], data["dy"], data["weight"], data["bias"]

    def softmax():
        y = _np_softmax(x)
        return [y, y * (dy - (dy * y).sum(-1, keepdims=True))] if grad else y

    def layer_norm():
        y, normed, rstd = _np_layer_norm(x, weight, bias)
        if not grad:
            return y
        dnormed = dy * weight
        dx = rstd * (
            dnormed
            - dnormed.mean(-1, keepdims=True)
            - normed * (dnormed * normed).mean(-1, keepdims=True)
        )
        return [y, dx, (dy * normed).sum(0), dy.sum(0)]

    return Prepared(run=softmax if op == "softmax" else layer_norm)


# ---- graphjit -------------------------------------------------------------------------------


def _gj_forward(gj, op: str, x, weight, bias):
    if op == "softmax":
        return gj.softmax(x, axis=-1)
    return gj.nn.functional.layer_norm(x, [x.shape[-1]], weight, bias, EPS)


def build_static(data: dict, backend: str, op: str, grad: bool) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        x, dy, weight, bias = (
            gj.placeholder(gj.float32, data[k].shape, name=k) for k in ("x", "dy", "weight", "bias")
        )
        y = _gj_forward(gj, op, x, weight, bias)
        wrt = [x] if op == "softmax" else [x, weight, bias]
        fetches = [y, *gj.gradients(y, wrt, grad_ys=dy)] if grad else y
    feeds = {x: data["x"], dy: data["dy"], weight: data["weight"], bias: data["bias"]}
    return gj_session(graph, fetches, feeds, backend)


def build_eager(data: dict, op: str, grad: bool) -> Prepared:
    import graphjit as gj

    x = gj.tensor(data["x"], requires_grad=grad)
    weight = gj.tensor(data["weight"], requires_grad=grad)
    bias = gj.tensor(data["bias"], requires_grad=grad)
    dy = gj.tensor(data["dy"])
    wrt = [x] if op == "softmax" else [x, weight, bias]

    def run():
        y = _gj_forward(gj, op, x, weight, bias)
        return [y, *gj.autograd.grad(y, wrt, dy)] if grad else y

    return Prepared(run=run)


# ---- peers ------------------------------------------------------------------------------


def _torch_forward(torch, op: str):
    functional = torch.nn.functional
    if op == "softmax":
        return lambda x, weight, bias: torch.softmax(x, -1)
    return lambda x, weight, bias: functional.layer_norm(x, (x.shape[-1],), weight, bias, EPS)


def build_torch(data: dict, compiled: bool, op: str, grad: bool) -> Prepared:
    """torch.compile compiles the forward; with `grad`, AOTAutograd compiles its backward."""
    torch = peers.torch()
    x, weight, bias = torch_tensors(data["x"], data["weight"], data["bias"], requires_grad=grad)
    (dy,) = torch_tensors(data["dy"])
    forward = torch_jit(compiled)(_torch_forward(torch, op))
    wrt = [x] if op == "softmax" else [x, weight, bias]

    def run():
        if not grad:
            with torch.no_grad():
                return forward(x, weight, bias)
        y = forward(x, weight, bias)
        return [y.detach(), *torch.autograd.grad(y, wrt, dy)]

    return Prepared(run=run)


def _jax_forward(jax, op: str):
    if op == "softmax":
        return lambda x, weight, bias: jax.nn.softmax(x, axis=-1)

    def layer_norm(x, weight, bias):
        centred = x - x.mean(-1, keepdims=True)
        rstd = jax.lax.rsqrt((centred * centred).mean(-1, keepdims=True) + EPS)
        return centred * rstd * weight + bias

    return layer_norm


def build_jax(data: dict, op: str, grad: bool) -> Prepared:
    jax = peers.jax()
    forward = _jax_forward(jax, op)

    def forward_and_grad(x, dy, weight, bias):
        y, vjp = jax.vjp(forward, x, weight, bias)
        dx, dweight, dbias = vjp(dy)
        return [y, dx] if op == "softmax" else [y, dx, dweight, dbias]

    fn = jax.jit(forward_and_grad if grad else lambda x, dy, weight, bias: forward(x, weight, bias))
    return jax_call(fn, data["x"], data["dy"], data["weight"], data["bias"])


def build_tf1(data: dict, op: str, grad: bool) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        x, dy, weight, bias = (
            tf.placeholder(tf.float32, data[k].shape, name=k) for k in ("x", "dy", "weight", "bias")
        )
        if op == "softmax":
            y, wrt = tf.nn.softmax(x, axis=-1), [x]
        else:
            mean, variance = tf.nn.moments(x, axes=[1], keepdims=True)
            y = (x - mean) * tf.math.rsqrt(variance + EPS) * weight + bias
            wrt = [x, weight, bias]
        fetches = [y, *tf.gradients(y, wrt, grad_ys=dy)] if grad else y
    feeds = {x: data["x"], dy: data["dy"], weight: data["weight"], bias: data["bias"]}
    return tf1_session(graph, fetches, feeds)


SIZES = {
    "tiny": {"rows": 8, "cols": 19},
    "quick": {"rows": 1024, "cols": 512},
    "full": {"rows": 4096, "cols": 1024},
}


def _workload(op: str, grad: bool) -> Workload:
    label = {"softmax": "softmax", "layer_norm": "layer norm"}[op]
    return Workload(
        name=f"{op.replace('_', '')}{'_grad' if grad else ''}",
        description=(
            f"{label} over the last axis of rows x cols float32"
            + (", forward and gradient" if grad else "")
            + " (4096 x 1024 full size)"
        ),
        sizes=SIZES,
        make_data=make_data,
        builders=standard_builders(globals(), op=op, grad=grad),
        notes={"torch-compile": "torch.compile compiles the forward (AOTAutograd its backward)"}
        if grad
        else {},
    )


SOFTMAX = _workload("softmax", grad=False)
SOFTMAX_GRAD = _workload("softmax", grad=True)
LAYERNORM = _workload("layer_norm", grad=False)
LAYERNORM_GRAD = _workload("layer_norm", grad=True)
