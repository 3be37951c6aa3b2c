"""gj.nn layers against the same torch.nn layers with copied weights (forward values and the
gradients of inputs and parameters, in float64), train/eval switching, buffers and
state_dict round trips, gj.nn.init, gj.nn.functional, and layers under gj.function.

Where PyTorch is not installed the torch comparisons skip; the NumPy and hand-computed checks
(initialisation bounds, dropout statistics, state_dict, containers) still run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import graphjit as gj
import graphjit.nn.functional as F

try:
    import torch
except ImportError:  # (the NumPy checks still run)
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
F64 = "float64"


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _to_torch(module, torch_module):
    """Copy the gj module's state into the torch one through state_dict, so the names and
    shapes of parameters and buffers must agree with PyTorch's."""
    state = {k: torch.tensor(v) for k, v in module.state_dict().items()}
    torch_module = torch_module.double()  # (first, so loading keeps float64's digits)
    torch_module.load_state_dict(state, strict=True)
    return torch_module


def _outputs(out) -> list:
    return [o for o in (out if isinstance(out, tuple) else (out,)) if o is not None]


def assert_matches_torch(module, torch_module, *inputs, rtol=1e-9, atol=1e-11, **kwargs):
    """Same outputs; then, backpropagating the same random cotangents, the same gradients
    for the float inputs and for every parameter (by name)."""
    torch_module = _to_torch(module, torch_module)
    floats = [np.asarray(a).dtype.kind == "f" for a in inputs]
    gj_in = [gj.tensor(a, requires_grad=f) for a, f in zip(inputs, floats)]
    torch_in = [torch.tensor(a, requires_grad=f) for a, f in zip(inputs, floats)]
    got, want = _outputs(module(*gj_in, **kwargs)), _outputs(torch_module(*torch_in, **kwargs))
    assert len(got) == len(want)
    cotangents = [_rng(1).normal(size=w.shape) for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.detach().numpy(), rtol=rtol, atol=atol)
    sum((g * gj.tensor(c)).sum() for g, c in zip(got, cotangents)).backward()
    sum((w * torch.tensor(c)).sum() for w, c in zip(want, cotangents)).backward()
    for g, w, f in zip(gj_in, torch_in, floats):
        if f:
            np.testing.assert_allclose(g.grad.numpy(), w.grad.numpy(), rtol=rtol, atol=atol)
    torch_params = dict(torch_module.named_parameters())
    for name, p in module.named_parameters():
        np.testing.assert_allclose(
            p.grad.numpy(), torch_params[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name
        )
    return got


# ---- convolution and pooling ---------------------------------------------------------------


def _pad_supports(mode: str) -> bool:
    try:
        F.pad(gj.ones(1, 1, 2, 2), (1, 1, 1, 1), mode=mode)
    except (ValueError, gj.GraphjitError):
        return False
    return True


@needs_torch
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"stride": 2, "padding": 1},
        {"padding": (1, 2), "dilation": 2, "bias": False},
        {"groups": 2, "stride": (1, 2)},
        {"padding": "same"},
        {"padding": 1, "padding_mode": "reflect"},
    ],
)
def test_conv2d_matches_torch(options):
    if options.get("padding_mode", "zeros") != "zeros" and not _pad_supports("reflect"):
        pytest.skip("graphjit.frontend.activations.pad supports only mode='constant' so far")
    layer = gj.nn.Conv2d(4, 6, 3, dtype=F64, **options)
    reference = torch.nn.Conv2d(4, 6, 3, **options)
    assert_matches_torch(layer, reference, _rng().normal(size=(2, 4, 7, 8)))


@needs_torch
@pytest.mark.parametrize(
    "layer, reference",
    [
        (lambda: gj.nn.MaxPool2d(2), lambda: torch.nn.MaxPool2d(2)),
        (lambda: gj.nn.MaxPool2d(3, stride=2, padding=1),
         lambda: torch.nn.MaxPool2d(3, stride=2, padding=1)),
        (lambda: gj.nn.AvgPool2d(2), lambda: torch.nn.AvgPool2d(2)),
        (lambda: gj.nn.AvgPool2d(3, stride=1, padding=1),
         lambda: torch.nn.AvgPool2d(3, stride=1, padding=1)),
        (lambda: gj.nn.AdaptiveAvgPool2d(1), lambda: torch.nn.AdaptiveAvgPool2d(1)),
        (lambda: gj.nn.AdaptiveAvgPool2d((1, 1)), lambda: torch.nn.AdaptiveAvgPool2d((1, 1))),
    ],
)  # fmt: skip
def test_pooling_matches_torch(layer, reference):
    assert_matches_torch(layer(), reference(), _rng().normal(size=(2, 3, 6, 6)))


def test_pooling_refuses_options_it_does_not_implement():
    with pytest.raises(gj.GraphjitError, match="ceil_mode"):
        gj.nn.MaxPool2d(2, ceil_mode=True)
    with pytest.raises(gj.GraphjitError, match="count_include_pad"):
        gj.nn.AvgPool2d(2, count_include_pad=False)


# ---- normalisation -------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda lib, **kw: lib.nn.BatchNorm1d(3, **kw), (8, 3)),
        (lambda lib, **kw: lib.nn.BatchNorm1d(3, **kw), (4, 3, 5)),
        (lambda lib, **kw: lib.nn.BatchNorm2d(3, **kw), (4, 3, 2, 5)),
    ],
)
@pytest.mark.parametrize("options", [{}, {"momentum": None}, {"affine": False}])
def test_batch_norm_trains_and_evaluates_like_torch(make, shape, options):
    layer = make(gj, dtype=F64, **options)
    reference = _to_torch(layer, make(torch, **options))
    for p in layer.parameters():  # (not the default ones and zeros, so that they matter)
        gj.nn.init.uniform_(p, 0.5, 1.5)
    for step in range(3):  # training: batch statistics, running statistics updated
        x = _rng(step).normal(2.0, 3.0, size=shape)
        assert_matches_torch(layer, reference, x)
        for name, buffer in layer.named_buffers():
            want = dict(reference.named_buffers())[name].numpy()
            np.testing.assert_allclose(buffer.numpy(), want, rtol=1e-12, err_msg=name)
    assert int(layer.num_batches_tracked.item()) == 3
    layer.eval(), reference.eval()
    assert_matches_torch(layer, reference, _rng(9).normal(size=shape))
    assert int(layer.num_batches_tracked.item()) == 3  # eval leaves the statistics alone


@needs_torch
def test_batch_norm_without_running_stats_always_uses_the_batch():
    layer = gj.nn.BatchNorm2d(2, track_running_stats=False, dtype=F64).eval()
    assert layer.running_mean is None and list(layer.buffers()) == []
    reference = torch.nn.BatchNorm2d(2, track_running_stats=False).eval()
    assert_matches_torch(layer, reference, _rng().normal(size=(3, 2, 4, 4)))


def test_batch_norm_checks_the_input_rank():
    with pytest.raises(gj.ShapeError, match="rank"):
        gj.nn.BatchNorm2d(3)(gj.zeros(2, 3))


@needs_torch
@pytest.mark.parametrize("shape, normalized", [((4, 5), 5), ((2, 3, 4, 5), (4, 5))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch(shape, normalized, affine):
    layer = gj.nn.LayerNorm(normalized, elementwise_affine=affine, dtype=F64)
    for p in layer.parameters():
        gj.nn.init.normal_(p)
    reference = torch.nn.LayerNorm(normalized, elementwise_affine=affine)
    assert_matches_torch(layer, reference, _rng().normal(1.0, 2.0, size=shape))


@needs_torch
@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_norm_matches_torch(groups):
    layer = gj.nn.GroupNorm(groups, 6, dtype=F64)
    for p in layer.parameters():
        gj.nn.init.normal_(p)
    assert_matches_torch(layer, torch.nn.GroupNorm(groups, 6), _rng().normal(size=(2, 6, 3, 4)))


# ---- embedding, activations, shapes --------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("padding_idx", [None, 1, -1])
def test_embedding_matches_torch_and_skips_the_padding_row(padding_idx):
    gj.manual_seed(0)
    layer = gj.nn.Embedding(5, 3, padding_idx=padding_idx, dtype=F64)
    if padding_idx is not None:
        assert not layer.weight.numpy()[padding_idx].any()  # starts at zero, as PyTorch
        gj.nn.init.ones_(layer.weight)  # (a non-zero row still gets no gradient)
    indices = np.array([[0, 1, 4], [1, 1, 3]])
    assert_matches_torch(layer, torch.nn.Embedding(5, 3, padding_idx=padding_idx), indices)
    if padding_idx is not None:
        assert not layer.weight.grad.numpy()[padding_idx].any()


@needs_torch
@pytest.mark.parametrize(
    "name, args",
    [("GELU", ()), ("GELU", ("tanh",)), ("SiLU", ()), ("LeakyReLU", (0.2,)), ("ELU", (0.7,)),
     ("Softplus", ()), ("Softplus", (2.0, 1.0)), ("ReLU", ()), ("Tanh", ()), ("Sigmoid", ()),
     ("Softmax", (1,)), ("LogSoftmax", (-1,)), ("Flatten", ()), ("Flatten", (0, 1)),
     ("Identity", ())],
)  # fmt: skip
def test_activation_and_shape_layers_match_torch(name, args):
    x = _rng().normal(0.0, 3.0, size=(2, 3, 4))
    assert_matches_torch(getattr(gj.nn, name)(*args), getattr(torch.nn, name)(*args), x)


def test_dropout_switches_with_train_and_eval():
    gj.manual_seed(0)
    layer = gj.nn.Sequential(gj.nn.Identity(), gj.nn.Dropout(0.25))
    x = gj.ones(200, 100, requires_grad=True)
    y = layer(x)
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.75, rtol=1e-6)  # survivors scaled
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.75, rtol=1e-6)  # the same mask
    layer.eval()
    assert not layer[1].training
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    with pytest.raises(gj.GraphjitError, match="p must be"):
        gj.nn.Dropout(1.5)


# ---- attention -----------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize(
    "mask_kind, options",
    [
        (None, {}),
        ("causal", {"is_causal": True}),
        ("bool", {}),
        ("float", {"scale": 0.3}),
    ],
)
def test_scaled_dot_product_attention_matches_torch(mask_kind, options):
    rng = _rng()
    q, k, v = (rng.normal(size=(2, 3, n, 4)) for n in (5, 6, 6))
    if mask_kind == "causal":
        k, v = k[:, :, :5], v[:, :, :5]
    mask = {"bool": rng.random((5, 6)) > 0.3, "float": rng.normal(size=(5, 6))}.get(mask_kind)
    if mask_kind == "bool":
        mask[:, 0] = True  # (every query may attend somewhere)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    gq, gk, gv = (gj.tensor(a, requires_grad=True) for a in (q, k, v))
    want = torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=None if mask is None else torch.tensor(mask), **options
    )
    got = F.scaled_dot_product_attention(
        gq, gk, gv, attn_mask=None if mask is None else gj.tensor(mask), **options
    )
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-9, atol=1e-12)
    cotangent = rng.normal(size=want.shape)
    (want * torch.tensor(cotangent)).sum().backward()
    (got * gj.tensor(cotangent)).sum().backward()
    for g, t in [(gq, tq), (gk, tk), (gv, tv)]:
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-11)


def test_scaled_dot_product_attention_refuses_mask_and_causal_together():
    x = gj.ones(1, 2, 2)
    with pytest.raises(gj.GraphjitError, match="not both"):
        F.scaled_dot_product_attention(x, x, x, attn_mask=gj.ones(2, 2), is_causal=True)


def _attention_inputs(batch_first: bool, batched: bool = True):
    rng = _rng(3)
    shapes = [(2, 5, 8), (2, 6, 8), (2, 6, 8)] if batch_first else [(5, 2, 8), (6, 2, 8), (6, 2, 8)]
    arrays = [rng.normal(size=s) for s in shapes]
    return arrays if batched else [a[:, 0] for a in arrays]


@needs_torch
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize(
    "options",
    [{}, {"average_attn_weights": False}, {"need_weights": False}],
)
def test_multihead_attention_matches_torch(batch_first, options):
    gj.manual_seed(0)
    layer = gj.nn.MultiheadAttention(8, 2, batch_first=batch_first, dtype=F64)
    reference = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first)
    assert_matches_torch(layer, reference, *_attention_inputs(batch_first), **options)


@needs_torch
def test_multihead_attention_masks_match_torch():
    layer = gj.nn.MultiheadAttention(8, 4, dtype=F64)
    reference = torch.nn.MultiheadAttention(8, 4)
    rng = _rng(4)
    attn_mask = rng.random((5, 6)) > 0.7  # True: may NOT attend (PyTorch's MHA convention)
    attn_mask[:, 0] = False
    padding = np.zeros((2, 6), np.bool_)
    padding[1, 4:] = True
    inputs = _attention_inputs(False)
    for kwargs in [{"attn_mask": attn_mask}, {"key_padding_mask": padding},
                   {"attn_mask": rng.normal(size=(5, 6))},
                   {"attn_mask": attn_mask, "key_padding_mask": padding}]:  # fmt: skip
        layer.zero_grad()
        reference = torch.nn.MultiheadAttention(8, 4)
        gj_kwargs = {k: gj.tensor(v) for k, v in kwargs.items()}
        torch_kwargs = {k: torch.tensor(v) for k, v in kwargs.items()}
        got = layer(*map(gj.tensor, inputs), **gj_kwargs)
        want = _to_torch(layer, reference)(*map(torch.tensor, inputs), **torch_kwargs)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.numpy(), w.detach().numpy(), rtol=1e-9, atol=1e-12)


@needs_torch
def test_multihead_attention_causal_and_unbatched_match_torch():
    layer = gj.nn.MultiheadAttention(8, 2, dtype=F64)
    causal = ~np.tril(np.ones((5, 6), np.bool_))
    query, key, value = _attention_inputs(False, batched=False)
    reference = _to_torch(layer, torch.nn.MultiheadAttention(8, 2))
    got, got_weights = layer(*map(gj.tensor, (query, key, value)), is_causal=True)
    want, want_weights = reference(*map(torch.tensor, (query, key, value)),
                                   attn_mask=torch.tensor(causal), is_causal=True)  # fmt: skip
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-9)
    np.testing.assert_allclose(got_weights.numpy(), want_weights.detach().numpy(), rtol=1e-9)
    assert got.shape == (5, 8) and got_weights.shape == (5, 6)


def test_multihead_attention_initialisation_and_parameters():
    gj.manual_seed(0)
    layer = gj.nn.MultiheadAttention(8, 2)
    names = [n for n, _ in layer.named_parameters()]
    assert names == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    bound = math.sqrt(6 / (8 + 24))  # xavier-uniform over (3 * 8, 8)
    assert np.abs(layer.in_proj_weight.numpy()).max() <= bound
    assert not layer.in_proj_bias.numpy().any() and not layer.out_proj.bias.numpy().any()
    with pytest.raises(gj.GraphjitError, match="divisible"):
        gj.nn.MultiheadAttention(6, 4)


# ---- initialisation ------------------------------------------------------------------------


def test_default_initialisations_follow_pytorch():
    gj.manual_seed(0)
    conv = gj.nn.Conv2d(4, 8, 3, groups=2)
    bound = 1 / math.sqrt(2 * 3 * 3)  # fan_in = in_channels / groups * kernel area
    for p in (conv.weight, conv.bias):
        assert 0.8 * bound < np.abs(p.numpy()).max() <= bound
    embedding = gj.nn.Embedding(200, 50)
    assert abs(embedding.weight.numpy().std() - 1.0) < 0.05  # N(0, 1)
    norm = gj.nn.LayerNorm(4)
    assert norm.weight.tolist() == [1.0] * 4 and norm.bias.tolist() == [0.0] * 4


@pytest.mark.parametrize(
    "nonlinearity, param, gain",
    [("linear", None, 1.0), ("conv2d", None, 1.0), ("sigmoid", None, 1.0),
     ("tanh", None, 5 / 3), ("relu", None, math.sqrt(2)), ("selu", None, 0.75),
     ("leaky_relu", None, math.sqrt(2 / (1 + 0.01**2))),
     ("leaky_relu", math.sqrt(5), math.sqrt(1 / 3))],
)  # fmt: skip
def test_calculate_gain(nonlinearity, param, gain):
    assert gj.nn.init.calculate_gain(nonlinearity, param) == pytest.approx(gain, rel=1e-15)
    if torch is not None:
        assert torch.nn.init.calculate_gain(nonlinearity, param) == pytest.approx(gain, rel=1e-15)


def test_init_functions_fill_in_place_with_the_right_spread():
    gj.manual_seed(1)
    w = gj.nn.Parameter(gj.zeros(300, 200))
    fan_in, fan_out = 200, 300
    cases = [
        (lambda: gj.nn.init.xavier_uniform_(w), math.sqrt(2 / (fan_in + fan_out))),
        (lambda: gj.nn.init.xavier_normal_(w, gain=2.0), 2 * math.sqrt(2 / (fan_in + fan_out))),
        (lambda: gj.nn.init.kaiming_uniform_(w, nonlinearity="relu"), math.sqrt(2 / fan_in)),
        (lambda: gj.nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
         math.sqrt(2 / fan_out)),
        (lambda: gj.nn.init.normal_(w, 1.0, 0.5), 0.5),
        (lambda: gj.nn.init.uniform_(w, -1.0, 1.0), math.sqrt(1 / 3)),
    ]  # fmt: skip
    for fill, std in cases:
        assert fill() is w
        assert w.numpy().std() == pytest.approx(std, rel=0.02)
    gj.nn.init.trunc_normal_(w, mean=0.5, std=1.0, a=0.0, b=1.0)
    assert w.numpy().min() >= 0.0 and w.numpy().max() <= 1.0
    gj.nn.init.constant_(w, 0.25)
    assert np.all(w.numpy() == 0.25) and w.requires_grad
    assert gj.nn.init.ones_(gj.zeros(2)).tolist() == [1.0, 1.0]
    assert gj.nn.init.zeros_(gj.ones(2)).tolist() == [0.0, 0.0]
    with pytest.raises(gj.GraphjitError, match="2 dimensions"):
        gj.nn.init.xavier_uniform_(gj.zeros(3))


# ---- module machinery: buffers, state_dict, containers -------------------------------------


class WithBuffers(gj.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = gj.nn.Linear(3, 2)
        self.norm = gj.nn.BatchNorm1d(2)
        self.register_buffer("scale", gj.tensor([2.0, 3.0]))
        self.register_buffer("cache", gj.zeros(2), persistent=False)

    def forward(self, x):
        return self.norm(self.linear(x)) * self.scale


def test_buffers_are_registered_but_not_parameters():
    model = WithBuffers()
    assert [n for n, _ in model.named_buffers()] == [
        "scale", "cache", "norm.running_mean", "norm.running_var", "norm.num_batches_tracked",
    ]  # fmt: skip
    assert all(not b.requires_grad for b in model.buffers())
    assert "scale" not in dict(model.named_parameters())
    model.scale = gj.tensor([4.0, 5.0])  # assigning a tensor replaces the buffer
    assert model.scale.tolist() == [4.0, 5.0] and "scale" in dict(model.named_buffers())
    with pytest.raises(gj.GraphjitError, match="already exists"):
        model.register_buffer("linear", gj.zeros(1))


def test_state_dict_round_trip_includes_persistent_buffers():
    gj.manual_seed(0)
    model = WithBuffers()
    for _ in range(2):  # move the running statistics away from their start
        model(gj.randn(8, 3))
    state = model.state_dict()
    assert list(state) == [
        "scale", "linear.weight", "linear.bias", "norm.weight", "norm.bias",
        "norm.running_mean", "norm.running_var", "norm.num_batches_tracked",
    ]  # fmt: skip
    fresh = WithBuffers()
    fresh.load_state_dict(state)
    x = gj.randn(4, 3)
    model.eval(), fresh.eval()
    np.testing.assert_array_equal(fresh(x).numpy(), model(x).numpy())
    state["linear.weight"][...] = 0  # (state_dict gives copies)
    assert model.linear.weight.numpy().any()


def test_load_state_dict_strictness_and_shapes():
    model = WithBuffers()
    state = model.state_dict()
    del state["norm.running_var"]
    state["extra"] = np.zeros(1)
    with pytest.raises(gj.GraphjitError, match="missing keys.*running_var.*unexpected.*extra"):
        model.load_state_dict(state)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["norm.running_var"] and result.unexpected_keys == ["extra"]
    with pytest.raises(gj.ShapeError, match="linear.weight"):
        model.load_state_dict({**model.state_dict(), "linear.weight": np.zeros((3, 3))})


def test_load_state_dict_writes_in_place_so_optimizers_keep_their_parameters():
    model = gj.nn.Linear(2, 2)
    optimizer = gj.optim.SGD(model.parameters(), lr=0.1)
    model.load_state_dict({"weight": np.eye(2), "bias": np.zeros(2)})
    assert optimizer.param_groups[0]["params"][0] is model.weight
    assert model.weight.numpy().tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_module_list_and_module_dict_register_their_modules():
    blocks = gj.nn.ModuleList([gj.nn.Linear(2, 2) for _ in range(3)])
    blocks.append(gj.nn.Dropout())
    heads = gj.nn.ModuleDict({"a": gj.nn.Linear(2, 1), "b": gj.nn.BatchNorm1d(1)})
    model = gj.nn.Sequential(gj.nn.Identity())
    model.blocks, model.heads = blocks, heads
    names = [n for n, _ in model.named_parameters()]
    assert names[:2] == ["blocks.0.weight", "blocks.0.bias"] and "heads.b.weight" in names
    assert len(blocks) == 4 and isinstance(blocks[-1], gj.nn.Dropout)
    assert isinstance(blocks[1:3], gj.nn.ModuleList) and len(blocks[1:3]) == 2
    assert list(heads) == ["a", "b"] and "a" in heads and len(heads) == 2
    model.eval()
    assert not blocks[3].training and not heads["b"].training
    heads["c"] = gj.nn.Linear(1, 1)
    assert "heads.c.weight" in dict(model.named_parameters())
    with pytest.raises(IndexError):
        blocks[4]


def test_sequential_slices_and_named_children():
    model = gj.nn.Sequential(gj.nn.Linear(2, 3), gj.nn.ReLU(), gj.nn.Linear(3, 1))
    assert isinstance(model[:2], gj.nn.Sequential) and len(model[:2]) == 2
    assert [n for n, _ in model.named_children()] == ["0", "1", "2"]


# ---- gj.nn.functional ----------------------------------------------------------------------


def test_functional_module_imports_and_resolves_every_name():
    import graphjit.nn.functional as functional

    assert functional is gj.nn.functional is F
    for name in F.__all__:
        assert callable(getattr(F, name)), name
        assert getattr(gj.nn, name) is getattr(F, name), name
    assert gj.nn.conv2d is gj.frontend.conv.conv2d and F.dropout is gj.frontend.random.dropout


def test_functional_linear_and_mse_loss():
    x, w, b = gj.randn(4, 3), gj.randn(2, 3), gj.randn(2)
    np.testing.assert_allclose(F.linear(x, w, b).numpy(), x.numpy() @ w.numpy().T + b.numpy(),
                               rtol=1e-5)  # fmt: skip
    assert F.mse_loss(gj.tensor([1.0, 3.0]), gj.tensor([0.0, 1.0])).item() == pytest.approx(2.5)
    assert F.mse_loss(gj.tensor([1.0, 3.0]), gj.zeros(2), reduction="sum").item() == 10.0


@needs_torch
def test_functional_cross_entropy_takes_classes_on_axis_one_as_torch():
    logits = _rng().normal(size=(2, 4, 3))
    labels = np.array([[0, 3, 1], [2, 2, -100]])
    got = F.cross_entropy(gj.tensor(logits), gj.tensor(labels))
    want = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels))
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    with pytest.raises(gj.GraphjitError, match="label_smoothing"):
        F.cross_entropy(gj.tensor(logits[:, :, 0]), gj.tensor(labels[:, 0]), label_smoothing=0.1)


# ---- under gj.function ---------------------------------------------------------------------


def _compiled_matches_eager(model, *arrays):
    """gj.function(model) gives the eager model's outputs, and gradients for its parameters
    through the compiled call equal the eager ones."""
    compiled = gj.function(model, backend="interpreter")
    inputs = [gj.tensor(a) for a in arrays]
    got, want = compiled(*inputs), model(*inputs)
    got, want = _outputs(got), _outputs(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
    gj.sum(got[0] * got[0]).backward()
    compiled_grads = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    gj.sum(want[0] * want[0]).backward()
    for g, p in zip(compiled_grads, model.parameters()):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_conv_net_under_function():
    gj.manual_seed(0)
    model = gj.nn.Sequential(
        gj.nn.Conv2d(1, 4, 3, padding=1), gj.nn.ReLU(), gj.nn.MaxPool2d(2),
        gj.nn.Conv2d(4, 4, 3, groups=2), gj.nn.GELU(), gj.nn.AdaptiveAvgPool2d(1),
        gj.nn.Flatten(), gj.nn.Linear(4, 3),
    )  # fmt: skip
    _compiled_matches_eager(model, _rng().normal(size=(2, 1, 8, 8)).astype(np.float32))


def test_layer_norm_and_embedding_under_function():
    gj.manual_seed(0)

    class Tagger(gj.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = gj.nn.Embedding(10, 6, padding_idx=0)
            self.norm = gj.nn.LayerNorm(6)
            self.out = gj.nn.Linear(6, 3)

        def forward(self, tokens):
            return self.out(self.norm(self.embed(tokens)))

    model = Tagger()
    gj.nn.init.normal_(model.norm.weight)
    _compiled_matches_eager(model, np.array([[1, 2, 0], [9, 0, 3]]))


def test_multihead_attention_under_function():
    gj.manual_seed(0)
    layer = gj.nn.MultiheadAttention(8, 2, batch_first=True)
    x = _rng().normal(size=(2, 5, 8)).astype(np.float32)
    compiled = gj.function(lambda x: layer(x, x, x, is_causal=True), backend="interpreter")
    got, got_weights = compiled(x)
    want, want_weights = layer(*[gj.tensor(x)] * 3, is_causal=True)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_weights, want_weights.numpy(), rtol=1e-5, atol=1e-6)


def test_dropout_under_function_follows_the_training_flag_at_trace_time():
    layer = gj.nn.Dropout(0.5).eval()
    x = np.ones((4, 4), np.float32)
    np.testing.assert_array_equal(gj.function(layer, backend="interpreter")(x), x)
    layer.train()
    y = gj.function(layer, backend="interpreter")(x)
    assert set(np.unique(y)) <= {0.0, 2.0} and (y == 0).any()


# ---- layers in a static graph (TF1 style) --------------------------------------------------


def test_parameter_free_layers_work_on_graph_values():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2, 3, 4, 4], name="x")
        y = gj.nn.Sequential(gj.nn.MaxPool2d(2), gj.nn.GELU(), gj.nn.Flatten())(x)
        attention = F.scaled_dot_product_attention(x, x, x, is_causal=True)
    value = _rng().normal(size=(2, 3, 4, 4)).astype(np.float32)
    with gj.Session(g, backend="interpreter") as sess:
        got, got_attention = sess.run([y, attention], {x: value})
    eager = gj.tensor(value)
    want = gj.nn.Sequential(gj.nn.MaxPool2d(2), gj.nn.GELU(), gj.nn.Flatten())(eager)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        got_attention, F.scaled_dot_product_attention(eager, eager, eager, is_causal=True).numpy(),
        rtol=1e-5,
    )  # fmt: skip


def test_modules_with_parameters_build_into_a_static_graph_and_train_there():
    """Called while a graph is built, a module's parameters and buffers become graph
    Variables (made once per graph) holding their current values: gj.train optimizers
    train them and batch norm's running statistics update through update_ops()."""
    gj.manual_seed(0)
    model = gj.nn.Sequential(
        gj.nn.Conv2d(1, 2, 3), gj.nn.BatchNorm2d(2), gj.nn.ReLU(), gj.nn.Flatten(),
        gj.nn.Linear(8, 2),
    )  # fmt: skip
    value = _rng().normal(size=(4, 1, 4, 4)).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [4, 1, 4, 4], name="x")
        y = model(x)
        again = model(x)  # (the same Variables: weights shared between calls)
        loss = gj.mean(gj.square(y))
        train = gj.train.SGD(0.1).minimize(loss)
        updates = gj.frontend.normalization.update_ops()
        trainable = [v.name for v in gj.trainable_variables()]
    assert trainable == [n for n, _ in model.named_parameters()]
    variables = model.graph_variables(g)
    assert list(variables) == list(model.state_dict())
    with gj.Session(g, backend="interpreter") as sess:
        got, got_again = sess.run([y, again], {x: value})
        sess.run([train, *updates], {x: value})
        running_mean = sess.run(variables["1.running_mean"])
        trained_bias = sess.run(variables["4.bias"])
    want = model(gj.tensor(value))  # eager, training mode: the same batch statistics
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got, got_again)
    np.testing.assert_allclose(running_mean, model[1].running_mean.numpy(), rtol=1e-5)
    assert not np.allclose(trained_bias, model[4].bias.numpy())  # the graph's copy trained


def test_batch_norm_under_function_trains_and_evaluates_like_eager():
    """Its running statistics are graph Variables in the trace, written back after each
    call: the compiled and the eager call each move them once, by the same batch."""
    gj.manual_seed(0)
    model = gj.nn.Sequential(gj.nn.Conv2d(1, 2, 3), gj.nn.BatchNorm2d(2), gj.nn.ReLU())
    x = _rng().normal(size=(4, 1, 5, 5)).astype(np.float32)
    _compiled_matches_eager(model, x)  # training: batch statistics
    assert int(model[1].num_batches_tracked.item()) == 2
    model.eval().zero_grad()  # (the helper compares fresh gradients)
    _compiled_matches_eager(model, x)  # eval: the running statistics
    assert int(model[1].num_batches_tracked.item()) == 2


def test_a_module_with_buffers_only_builds_into_a_static_graph():
    """BatchNorm without affine parameters still has eager state (its running statistics):
    called while a graph is built, it becomes Variables like any module with parameters."""
    bn = gj.nn.BatchNorm1d(3, affine=False)
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [4, 3])
        y = bn(x)
    with gj.Session(g) as sess:
        out = sess.run(y, {x: data})
    want = (data - data.mean(0)) / np.sqrt(data.var(0) + 1e-5)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
