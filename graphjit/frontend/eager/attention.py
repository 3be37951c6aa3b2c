"""Attention: `scaled_dot_product_attention` (PyTorch's functional, a boolean mask means "may
attend") and the `MultiheadAttention` layer (PyTorch's, where a boolean mask means "may
not attend"). Built from matmul, softmax and where, so it runs in both modes."""

from __future__ import annotations

import math

import numpy as np

from graphjit.errors import GraphjitError, ShapeError
from graphjit.frontend import ops, shape_ops
from graphjit.frontend import random as random_ops
from graphjit.frontend.convert import as_tensor
from graphjit.frontend.eager import init
from graphjit.frontend.eager.layers import Linear, _empty_parameter
from graphjit.frontend.eager.module import Module
from graphjit.frontend.eager_compiled import compiled_when_hot

__all__ = ["MultiheadAttention", "scaled_dot_product_attention"]


def _is_bool(mask) -> bool:
    dtype = getattr(mask, "dtype", None)
    if dtype is None:
        return np.asarray(mask).dtype == np.bool_
    return dtype == np.bool_ if isinstance(dtype, np.dtype) else dtype.is_bool


def _additive(mask, allowed_when_true: bool):
    """A mask as a float tensor added to the scores: 0 where attending is allowed, -inf
    where not. Boolean masks follow `allowed_when_true`; float masks are already additive."""
    mask = as_tensor(mask, eager_ok=True)
    if not _is_bool(mask):
        return mask
    allowed = mask if allowed_when_true else ops.logical_not(mask)
    return ops.where(allowed, 0.0, float("-inf"))


def _causal_mask(length: int, source_length: int) -> np.ndarray:
    """True on and below the diagonal: position i may attend to positions <= i."""
    return np.tril(np.ones((length, source_length), np.bool_))


def attention_weights_and_output(query, key, value, additive_mask=None, dropout_p=0.0,
                                 scale=None):  # fmt: skip
    """softmax(q @ k.T * scale + mask) (dropped out with dropout_p) and its product with v."""
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = ops.mul(ops.matmul(query, key, transpose_b=True), scale)
    if additive_mask is not None:
        scores = ops.add(scores, additive_mask)
    weights = ops.softmax(scores, -1)
    if dropout_p > 0.0:
        weights = random_ops.dropout(weights, dropout_p, training=True)
    return weights, ops.matmul(weights, value)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale=None):  # fmt: skip
    """PyTorch's F.scaled_dot_product_attention over (..., L, E) queries and (..., S, E) keys
    and values: a boolean attn_mask marks the pairs that MAY attend (True), a float one is
    added to the scores; is_causal masks out keys after each query position."""
    if is_causal and attn_mask is not None:
        raise GraphjitError("scaled_dot_product_attention: give attn_mask or is_causal, not both")
    # (compiled when hot only without dropout, which draws random numbers, and without a
    # mask: its node would keep the mask, which the eager ops' rules do not read)
    plain = dropout_p or attn_mask is not None
    attend = _attention if plain else _compiled_attention
    return attend(query, key, value, attn_mask, dropout_p, is_causal, scale)


def _attention(query, key, value, attn_mask, dropout_p, is_causal, scale):
    if is_causal:
        attn_mask = _causal_mask(query.shape[-2], key.shape[-2])
    mask = None if attn_mask is None else _additive(attn_mask, True)
    _, out = attention_weights_and_output(query, key, value, mask, dropout_p, scale)
    return out


_compiled_attention = compiled_when_hot(_attention)


class MultiheadAttention(Module):
    """PyTorch's nn.MultiheadAttention (same embedding size for query, key and value):
    in_proj_weight (3E, E) xavier-uniform, in_proj_bias and out_proj.bias zero. Inputs are
    (L, N, E), or (N, L, E) with batch_first, or unbatched (L, E). forward returns
    (output, weights averaged over heads or per head, or None without need_weights).
    Boolean attn_mask and key_padding_mask mark what may NOT be attended (True)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, dtype="float32"):  # fmt: skip
        super().__init__()
        if embed_dim % num_heads:
            raise GraphjitError("MultiheadAttention: embed_dim must be divisible by num_heads")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim, self.batch_first = embed_dim // num_heads, batch_first
        self.in_proj_weight = _empty_parameter((3 * embed_dim, embed_dim), dtype)
        self.in_proj_bias = _empty_parameter((3 * embed_dim,), dtype) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _project(self, x, index: int):
        """x @ W_i.T + b_i for the query (0), key (1) or value (2) rows of in_proj."""
        rows = slice(index * self.embed_dim, (index + 1) * self.embed_dim)
        y = ops.matmul(x, self.in_proj_weight[rows], transpose_b=True)
        return y if self.in_proj_bias is None else ops.add(y, self.in_proj_bias[rows])

    def _split_heads(self, x):
        """(N, L, E) -> (N, H, L, D)."""
        n, length = x.shape[0], x.shape[1]
        x = shape_ops.reshape(x, [n, length, self.num_heads, self.head_dim])
        return shape_ops.transpose(x, (0, 2, 1, 3))

    def _mask(self, attn_mask, key_padding_mask, is_causal, sizes):
        """One additive mask broadcastable to (N, H, L, S), or None."""
        n, length, source_length = sizes
        if is_causal and attn_mask is None:
            attn_mask = ~_causal_mask(length, source_length)
        masks = []
        if attn_mask is not None:
            mask = _additive(attn_mask, False)
            if mask.ndim == 3:  # (N * H, L, S), PyTorch's per-head layout
                mask = shape_ops.reshape(mask, [n, self.num_heads, length, source_length])
            masks.append(mask)
        if key_padding_mask is not None:
            mask = _additive(key_padding_mask, False)
            masks.append(shape_ops.reshape(mask, [n, 1, 1, source_length]))
        if not masks:
            return None
        return masks[0] if len(masks) == 1 else ops.add(masks[0], masks[1])

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):  # fmt: skip
        unbatched = query.ndim == 2
        if unbatched:  # (L, E): a batch of one
            query, key, value = (shape_ops.expand_dims(t, 1) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = shape_ops.expand_dims(as_tensor(key_padding_mask,
                                                                   eager_ok=True), 0)  # fmt: skip
        elif query.ndim != 3:
            raise ShapeError(f"MultiheadAttention: expected rank 2 or 3 input, got {query.ndim}")
        if not self.batch_first or unbatched:  # (L, N, E) -> (N, L, E)
            query, key, value = (shape_ops.transpose(t, (1, 0, 2)) for t in (query, key, value))
        sizes = (query.shape[0], query.shape[1], key.shape[1])
        q, k, v = (
            self._split_heads(self._project(t, i)) for i, t in enumerate((query, key, value))
        )
        mask = self._mask(attn_mask, key_padding_mask, is_causal, sizes)
        dropout_p = self.dropout if self.training else 0.0
        weights, out = attention_weights_and_output(q, k, v, mask, dropout_p)
        out = self.out_proj(self._merge_heads(out))
        out = out if self.batch_first and not unbatched else shape_ops.transpose(out, (1, 0, 2))
        if unbatched:
            out = shape_ops.squeeze(out, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = ops.mean(weights, axis=1)
        return out, (shape_ops.squeeze(weights, 0) if unbatched else weights)

    def _merge_heads(self, x):
        """(N, H, L, D) -> (N, L, E)."""
        n, length = x.shape[0], x.shape[2]
        return shape_ops.reshape(shape_ops.transpose(x, (0, 2, 1, 3)), [n, length, self.embed_dim])

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
