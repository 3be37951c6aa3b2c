"""A decoder-only transformer training step: token and position embeddings, pre-norm
blocks (causal multi-head attention, GELU MLP, both residual), a final layer norm, a
vocabulary head and the mean next-token cross-entropy; then one AdamW update. Dropout is
off so that every mode computes the same numbers. The loss before the step and the
parameters after it are checked.

Weights are stored (in, out), so every layer is `x @ w + b`. GELU is the tanh form
(jax.nn.gelu's default) and the AdamW epsilon is 1e-6, not 1e-8: Adam's first step moves
each parameter by lr * g / (|g| + eps), which for a gradient at rounding-noise level
(|g| ~ 1e-9) would be +-lr in one mode and -+lr in another; eps 1e-6 keeps that noise
below the check's tolerance without changing the work done."""

from __future__ import annotations

import math

import numpy as np

from graphjit.bench import peers
from graphjit.bench.core import Prepared, Workload
from graphjit.bench.workloads.common import F32, jax_call, rng, torch_jit, torch_tensors

LR, BETAS, EPS, WEIGHT_DECAY = 1e-2, (0.9, 0.999), 1e-6, 1e-2
LN_EPS = 1e-5
GELU_C = math.sqrt(2.0 / math.pi)


# ---- parameters and data -------------------------------------------------------------------


def parameter_shapes(params: dict) -> dict:
    """{name: shape}, in the order every mode lists its parameters."""
    d, vocab, seq = params["d_model"], params["vocab"], params["seq"]
    shapes = {"tok": (vocab, d), "pos": (seq, d)}
    for layer in range(params["layers"]):
        for name, shape in [("ln1_g", (d,)), ("ln1_b", (d,)), ("qkv_w", (d, 3 * d)),
                            ("qkv_b", (3 * d,)), ("proj_w", (d, d)), ("proj_b", (d,)),
                            ("ln2_g", (d,)), ("ln2_b", (d,)), ("fc_w", (d, 4 * d)),
                            ("fc_b", (4 * d,)), ("out_w", (4 * d, d)), ("out_b", (d,))]:  # fmt: skip
            shapes[f"l{layer}_{name}"] = shape
    shapes.update(lnf_g=(d,), lnf_b=(d,), head_w=(d, vocab), head_b=(vocab,))
    return shapes


def _initial(generator, name: str, shape: tuple) -> np.ndarray:
    """GPT-2 style: matrices N(0, 0.02); gains near 1 and biases near 0 (not exactly, so
    that their gradients matter to the check)."""
    if name.endswith("_g"):
        return (1 + 0.1 * generator.normal(size=shape)).astype(F32)
    if name.endswith("_b"):
        return (0.02 * generator.normal(size=shape)).astype(F32)
    scale = 1.0 if name in ("tok", "pos") else 0.02
    return (scale * generator.normal(size=shape)).astype(F32)


def make_data(params: dict) -> dict:
    generator = rng(7)
    shapes = parameter_shapes(params)
    windows = generator.integers(0, params["vocab"], size=(params["batch"], params["seq"] + 1))
    return {
        "tokens": windows[:, :-1].astype(np.int64),
        "targets": windows[:, 1:].astype(np.int64),
        "names": list(shapes),
        "params": [_initial(generator, name, shape) for name, shape in shapes.items()],
        "heads": params["heads"],
        "layers": params["layers"],
    }


def _split_heads_shape(x_shape: tuple, heads: int) -> tuple:
    batch, seq, three_d = x_shape
    return (batch, seq, 3, heads, three_d // (3 * heads))


# ---- NumPy: the reference, with the backward pass written out ----------------------------


def _np_layer_norm(x, g, b):
    centred = x - x.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt((centred * centred).mean(-1, keepdims=True) + F32(LN_EPS))
    normed = centred * rstd
    return normed * g + b, (normed, rstd, g)


def _np_layer_norm_backward(dy, cache):
    normed, rstd, g = cache
    axes = tuple(range(dy.ndim - 1))
    dnormed = dy * g
    dx = rstd * (
        dnormed
        - dnormed.mean(-1, keepdims=True)
        - normed * (dnormed * normed).mean(-1, keepdims=True)
    )
    return dx, (dy * normed).sum(axes), dy.sum(axes)


def _np_gelu(x):
    inner = np.tanh(F32(GELU_C) * (x + F32(0.044715) * x**3))
    return F32(0.5) * x * (1 + inner), inner


def _np_gelu_backward(dy, x, inner):
    d_inner = F32(GELU_C) * (1 + F32(3 * 0.044715) * x * x)
    return dy * (F32(0.5) * (1 + inner) + F32(0.5) * x * (1 - inner * inner) * d_inner)


def _np_linear_backward(dy, x, w):
    """dx, dw, db of y = x @ w + b over any leading axes."""
    dw = x.reshape(-1, x.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])
    return dy @ w.T, dw, dy.reshape(-1, dy.shape[-1]).sum(0)


def _np_attention(qkv, heads):
    """(B, T, 3D) projections -> (B, T, D) causal attention output, and the cache."""
    batch, seq, _ = qkv.shape
    q, k, v = qkv.reshape(_split_heads_shape(qkv.shape, heads)).transpose(2, 0, 3, 1, 4)
    scale = F32(1 / math.sqrt(q.shape[-1]))
    scores = (q @ k.transpose(0, 1, 3, 2)) * scale
    scores = np.where(np.tril(np.ones((seq, seq), bool)), scores, F32(-np.inf))
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, seq, -1)
    return out, (q, k, v, weights, scale)


def _np_attention_backward(d_out, cache):
    q, k, v, weights, scale = cache
    batch, heads, seq, head_dim = q.shape
    d_o = d_out.reshape(batch, seq, heads, head_dim).transpose(0, 2, 1, 3)
    d_weights = d_o @ v.transpose(0, 1, 3, 2)
    dv = weights.transpose(0, 1, 3, 2) @ d_o
    d_scores = weights * (d_weights - (d_weights * weights).sum(-1, keepdims=True)) * scale
    dq, dk = d_scores @ k, d_scores.transpose(0, 1, 3, 2) @ q
    return np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(batch, seq, -1)


def _np_block(x, p, prefix, heads):
    h, ln1 = _np_layer_norm(x, p[prefix + "ln1_g"], p[prefix + "ln1_b"])
    qkv = h @ p[prefix + "qkv_w"] + p[prefix + "qkv_b"]
    attended, attention = _np_attention(qkv, heads)
    x = x + attended @ p[prefix + "proj_w"] + p[prefix + "proj_b"]
    h2, ln2 = _np_layer_norm(x, p[prefix + "ln2_g"], p[prefix + "ln2_b"])
    hidden = h2 @ p[prefix + "fc_w"] + p[prefix + "fc_b"]
    activated, inner = _np_gelu(hidden)
    x = x + activated @ p[prefix + "out_w"] + p[prefix + "out_b"]
    return x, (h, ln1, attended, attention, h2, ln2, hidden, activated, inner)


def _np_block_backward(dx, p, prefix, cache, grads):
    h, ln1, attended, attention, h2, ln2, hidden, activated, inner = cache
    d_act, grads[prefix + "out_w"], grads[prefix + "out_b"] = _np_linear_backward(
        dx, activated, p[prefix + "out_w"]
    )
    d_hidden = _np_gelu_backward(d_act, hidden, inner)
    d_h2, grads[prefix + "fc_w"], grads[prefix + "fc_b"] = _np_linear_backward(
        d_hidden, h2, p[prefix + "fc_w"]
    )
    d_ln2, grads[prefix + "ln2_g"], grads[prefix + "ln2_b"] = _np_layer_norm_backward(d_h2, ln2)
    dx = dx + d_ln2
    d_att, grads[prefix + "proj_w"], grads[prefix + "proj_b"] = _np_linear_backward(
        dx, attended, p[prefix + "proj_w"]
    )
    d_qkv = _np_attention_backward(d_att, attention)
    d_h, grads[prefix + "qkv_w"], grads[prefix + "qkv_b"] = _np_linear_backward(
        d_qkv, h, p[prefix + "qkv_w"]
    )
    d_ln1, grads[prefix + "ln1_g"], grads[prefix + "ln1_b"] = _np_layer_norm_backward(d_h, ln1)
    return dx + d_ln1


def _np_loss_and_grads(p: dict, tokens, targets, heads, layers):
    seq = tokens.shape[1]
    x = p["tok"][tokens] + p["pos"][:seq]
    caches = []
    for layer in range(layers):
        x, cache = _np_block(x, p, f"l{layer}_", heads)
        caches.append(cache)
    final, lnf = _np_layer_norm(x, p["lnf_g"], p["lnf_b"])
    logits = (final @ p["head_w"] + p["head_b"]).reshape(-1, p["head_w"].shape[1])
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    rows, labels = np.arange(len(logits)), targets.reshape(-1)
    loss = -log_probs[rows, labels].mean()
    d_logits = np.exp(log_probs)
    d_logits[rows, labels] -= F32(1)
    d_logits = (d_logits / F32(len(logits))).reshape(*tokens.shape, -1)
    grads = {}
    d_final, grads["head_w"], grads["head_b"] = _np_linear_backward(d_logits, final, p["head_w"])
    dx, grads["lnf_g"], grads["lnf_b"] = _np_layer_norm_backward(d_final, lnf)
    for layer in reversed(range(layers)):
        dx = _np_block_backward(dx, p, f"l{layer}_", caches[layer], grads)
    grads["tok"] = np.zeros_like(p["tok"])
    np.add.at(grads["tok"], tokens, dx)
    grads["pos"] = np.zeros_like(p["pos"])
    grads["pos"][:seq] = dx.sum(0)
    return loss, grads


def _np_adamw(params: dict, grads: dict, state: dict) -> None:
    """torch.optim.AdamW's update, in place."""
    state["t"] += 1
    (b1, b2), t = BETAS, state["t"]
    for name, g in grads.items():
        m = state["m"].setdefault(name, np.zeros_like(g))
        v = state["v"].setdefault(name, np.zeros_like(g))
        m += (1 - b1) * (g - m)
        v *= b2
        v += (1 - b2) * g * g
        denominator = np.sqrt(v) / math.sqrt(1 - b2**t) + EPS
        params[name] *= 1 - LR * WEIGHT_DECAY
        params[name] -= LR / (1 - b1**t) * (m / denominator)


def build_numpy(data: dict) -> Prepared:
    params = {n: p.copy() for n, p in zip(data["names"], data["params"])}
    state = {"t": 0, "m": {}, "v": {}}

    def step():
        loss, grads = _np_loss_and_grads(
            params, data["tokens"], data["targets"], data["heads"], data["layers"]
        )
        _np_adamw(params, grads, state)
        return loss

    return Prepared(run=step, readout=lambda loss: [loss, *params.values()])


# ---- graphjit: one module, run static, eager and by gj.function ---------------------------


def _gj_model(data: dict):
    """A gj.nn.Module holding the parameters (named as in `data`) whose forward is the
    loss; calling it while a graph is built makes its parameters graph Variables."""
    import graphjit as gj

    functional = gj.nn.functional

    def block(x, p, prefix, heads):
        d = x.shape[-1]
        h = functional.layer_norm(x, [d], p[prefix + "ln1_g"], p[prefix + "ln1_b"], LN_EPS)
        qkv = h @ p[prefix + "qkv_w"] + p[prefix + "qkv_b"]
        qkv = gj.reshape(qkv, _split_heads_shape(tuple(qkv.shape), heads))
        q, k, v = (gj.transpose(qkv[:, :, i], [0, 2, 1, 3]) for i in range(3))
        attended = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        attended = gj.reshape(gj.transpose(attended, [0, 2, 1, 3]), list(x.shape))
        x = x + attended @ p[prefix + "proj_w"] + p[prefix + "proj_b"]
        h = functional.layer_norm(x, [d], p[prefix + "ln2_g"], p[prefix + "ln2_b"], LN_EPS)
        hidden = functional.gelu(h @ p[prefix + "fc_w"] + p[prefix + "fc_b"], approximate="tanh")
        return x + hidden @ p[prefix + "out_w"] + p[prefix + "out_b"]

    class Transformer(gj.nn.Module):
        def __init__(self):
            super().__init__()
            for name, value in zip(data["names"], data["params"]):
                setattr(self, name, gj.nn.Parameter(value.copy()))

        def forward(self, tokens, targets):
            p = {name: getattr(self, name) for name in data["names"]}
            seq = tokens.shape[1]
            x = functional.embedding(tokens, p["tok"]) + p["pos"][:seq]
            for layer in range(data["layers"]):
                x = block(x, p, f"l{layer}_", data["heads"])
            x = functional.layer_norm(x, [x.shape[-1]], p["lnf_g"], p["lnf_b"], LN_EPS)
            logits = x @ p["head_w"] + p["head_b"]
            vocab = p["head_w"].shape[1]
            return gj.nn.softmax_cross_entropy(
                gj.reshape(logits, [-1, vocab]), gj.reshape(targets, [-1])
            )

    return Transformer()


def _gj_adamw(loss, variables: list):
    """torch.optim.AdamW for graph Variables, built into the graph (gj.train has Adam but
    no decoupled weight decay): moment Variables, a step counter and assigns."""
    import graphjit as gj

    (b1, b2), beta1, beta2 = BETAS, np.float32(BETAS[0]), np.float32(BETAS[1])
    step = gj.Variable(np.float32(0), name="adamw/step", trainable=False)
    t = step + 1.0
    step_size = LR / (1.0 - gj.pow(beta1, t))
    root_bias2 = gj.sqrt(1.0 - gj.pow(beta2, t))
    updates = [step.assign(t)]
    for var, grad in zip(variables, gj.gradients(loss, variables)):
        m = gj.Variable(np.zeros(var.shape, F32), name=f"{var.name}/m", trainable=False)
        v = gj.Variable(np.zeros(var.shape, F32), name=f"{var.name}/v", trainable=False)
        new_m = m + (grad - m) * (1 - b1)
        new_v = v * b2 + grad * (1 - b2) * grad
        denominator = gj.sqrt(new_v) / root_bias2 + EPS
        new_var = var * (1 - LR * WEIGHT_DECAY) - step_size * (new_m / denominator)
        updates += [m.assign(new_m), v.assign(new_v), var.assign(new_var)]
    return gj.group(*updates)


def build_static(data: dict, backend: str) -> Prepared:
    import graphjit as gj

    model = _gj_model(data)
    graph = gj.Graph()
    with graph.as_default():
        tokens = gj.placeholder(gj.int64, data["tokens"].shape, name="tokens")
        targets = gj.placeholder(gj.int64, data["targets"].shape, name="targets")
        loss = model(tokens, targets)
        variables = list(model.graph_variables(graph).values())
        train = _gj_adamw(loss, variables)
        trivial = gj.constant(F32(0), name="bench_trivial")
    session = gj.Session(graph, backend=backend)
    feeds = {tokens: data["tokens"], targets: data["targets"]}
    return Prepared(
        run=lambda: session.run([loss, train], feeds),
        readout=lambda output: [output[0], *session.run(variables)],
        trivial=lambda: session.run(trivial),
    )


def build_eager(data: dict) -> Prepared:
    import graphjit as gj

    model = _gj_model(data)
    tokens, targets = gj.tensor(data["tokens"]), gj.tensor(data["targets"])
    optimizer = gj.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS,
                               weight_decay=WEIGHT_DECAY)  # fmt: skip

    def step():
        optimizer.zero_grad()
        loss = model(tokens, targets)
        loss.backward()
        optimizer.step()
        return loss

    return Prepared(run=step, readout=lambda loss: [loss, *model.parameters()])


def build_function(data: dict) -> Prepared:
    """The whole step (forward, backward, AdamW) traced once by gj.function; the module's
    parameters are copied in and out around each compiled call."""
    import graphjit as gj

    model = _gj_model(data)

    @gj.function
    def train_step(model, tokens, targets):
        loss = model(tokens, targets)
        _gj_adamw(loss, list(model.parameters()))
        return loss

    return Prepared(
        run=lambda: train_step(model, data["tokens"], data["targets"]),
        readout=lambda loss: [loss, *model.parameters()],
    )


# ---- peers ------------------------------------------------------------------------------


def _torch_loss_fn(torch, names: list, heads: int, layers: int):
    functional = torch.nn.functional

    def block(x, p, prefix):
        d = x.shape[-1]
        h = functional.layer_norm(x, (d,), p[prefix + "ln1_g"], p[prefix + "ln1_b"], LN_EPS)
        qkv = h @ p[prefix + "qkv_w"] + p[prefix + "qkv_b"]
        qkv = qkv.reshape(_split_heads_shape(tuple(qkv.shape), heads))
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attended = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        attended = attended.transpose(1, 2).reshape(x.shape)
        x = x + attended @ p[prefix + "proj_w"] + p[prefix + "proj_b"]
        h = functional.layer_norm(x, (d,), p[prefix + "ln2_g"], p[prefix + "ln2_b"], LN_EPS)
        hidden = functional.gelu(h @ p[prefix + "fc_w"] + p[prefix + "fc_b"], approximate="tanh")
        return x + hidden @ p[prefix + "out_w"] + p[prefix + "out_b"]

    def loss_fn(tokens, targets, *params):
        p = dict(zip(names, params))
        x = functional.embedding(tokens, p["tok"]) + p["pos"][: tokens.shape[1]]
        for layer in range(layers):
            x = block(x, p, f"l{layer}_")
        x = functional.layer_norm(x, (x.shape[-1],), p["lnf_g"], p["lnf_b"], LN_EPS)
        logits = x @ p["head_w"] + p["head_b"]
        return functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    return loss_fn


def build_torch(data: dict, compiled: bool) -> Prepared:
    torch = peers.torch()
    tokens, targets = torch_tensors(data["tokens"], data["targets"])
    params = torch_tensors(*data["params"], requires_grad=True)
    loss_fn = torch_jit(compiled)(
        _torch_loss_fn(torch, data["names"], data["heads"], data["layers"])
    )
    optimizer = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)

    def step():
        optimizer.zero_grad()
        loss = loss_fn(tokens, targets, *params)
        loss.backward()
        optimizer.step()
        return loss

    return Prepared(run=step, readout=lambda loss: [loss, *params])


def _jax_loss_fn(jax, heads: int, layers: int):
    jnp = jax.numpy

    def layer_norm(x, g, b):
        centred = x - x.mean(-1, keepdims=True)
        return centred * jax.lax.rsqrt((centred**2).mean(-1, keepdims=True) + LN_EPS) * g + b

    def attention(qkv):
        q, k, v = qkv.reshape(_split_heads_shape(qkv.shape, heads)).transpose(2, 0, 3, 1, 4)
        scores = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])
        seq = scores.shape[-1]
        scores = jnp.where(jnp.tril(jnp.ones((seq, seq), bool)), scores, -jnp.inf)
        out = jax.nn.softmax(scores, axis=-1) @ v
        return out.transpose(0, 2, 1, 3).reshape(qkv.shape[0], qkv.shape[1], -1)

    def block(x, p, prefix):
        h = layer_norm(x, p[prefix + "ln1_g"], p[prefix + "ln1_b"])
        attended = attention(h @ p[prefix + "qkv_w"] + p[prefix + "qkv_b"])
        x = x + attended @ p[prefix + "proj_w"] + p[prefix + "proj_b"]
        h = layer_norm(x, p[prefix + "ln2_g"], p[prefix + "ln2_b"])
        hidden = jax.nn.gelu(h @ p[prefix + "fc_w"] + p[prefix + "fc_b"], approximate=True)
        return x + hidden @ p[prefix + "out_w"] + p[prefix + "out_b"]

    def loss_fn(p, tokens, targets):
        x = p["tok"][tokens] + p["pos"][: tokens.shape[1]]
        for layer in range(layers):
            x = block(x, p, f"l{layer}_")
        logits = layer_norm(x, p["lnf_g"], p["lnf_b"]) @ p["head_w"] + p["head_b"]
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.take_along_axis(log_probs, targets[..., None], axis=-1).mean()

    return loss_fn


def _jax_adamw(jax, params, grads, m, v, t):
    """torch.optim.AdamW's update on pytrees; t is the new (1-based) step."""
    tree_map, jnp = jax.tree_util.tree_map, jax.numpy
    (b1, b2) = BETAS
    m = tree_map(lambda m, g: m + (1 - b1) * (g - m), m, grads)
    v = tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    step_size, root_bias2 = LR / (1 - b1**t), jnp.sqrt(1 - b2**t)
    params = tree_map(
        lambda p, m, v: p * (1 - LR * WEIGHT_DECAY) - step_size * m / (jnp.sqrt(v) / root_bias2 + EPS),
        params, m, v,
    )  # fmt: skip
    return params, m, v


def build_jax(data: dict) -> Prepared:
    jax = peers.jax()
    jnp = jax.numpy
    loss_fn = _jax_loss_fn(jax, data["heads"], data["layers"])

    @jax.jit
    def update(params, m, v, t, tokens, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, tokens, targets)
        return (loss, *_jax_adamw(jax, params, grads, m, v, t + 1.0), t + 1.0)

    params = {n: jnp.asarray(p) for n, p in zip(data["names"], data["params"])}
    zeros = {n: jnp.zeros_like(p) for n, p in params.items()}
    state = {"params": params, "m": zeros, "v": zeros, "t": jnp.float32(0)}

    def step(tokens, targets):
        loss, state["params"], state["m"], state["v"], state["t"] = update(
            state["params"], state["m"], state["v"], state["t"], tokens, targets
        )
        return loss, [state["params"][n] for n in data["names"]]

    prepared = jax_call(step, data["tokens"].astype(np.int32), data["targets"].astype(np.int32))
    prepared.readout = lambda output: [output[0], *output[1]]
    return prepared


SIZES = {
    "tiny": {"batch": 2, "seq": 8, "d_model": 16, "heads": 2, "layers": 2, "vocab": 11},
    "quick": {"batch": 8, "seq": 64, "d_model": 64, "heads": 4, "layers": 2, "vocab": 96},
    "full": {"batch": 16, "seq": 128, "d_model": 128, "heads": 4, "layers": 2, "vocab": 96},
}

# (the same name and label as cnn.py's). TF1 has no builder: reported as skipped.

BUILDERS = {
    "gj-llvm": lambda data: build_static(data, backend="llvm"),
    "gj-interp": lambda data: build_static(data, backend="interpreter"),
    "gj-eager": build_eager,
    "gj-function": build_function,
    "numpy": build_numpy,
    "torch": lambda data: build_torch(data, compiled=False),
    "torch-compile": lambda data: build_torch(data, compiled=True),
    "jax-jit": build_jax,
}

TRAIN_STEP = Workload(
    name="transformer_train_step",
    description=(
        "Transformer training step: 2 pre-norm layers, d_model 128, 4 heads, causal "
        "attention, batch 16 x 128 tokens, vocab 96; AdamW (full size)"
    ),
    sizes=SIZES,
    make_data=make_data,
    builders=BUILDERS,
    notes={
        "torch-compile": "torch.compile compiles the loss (AOTAutograd its backward); AdamW is eager"
    },
)
