"""Random numbers in graphs from a counter-based generator (Philox 4x32-10, as JAX and PyTorch use):
the same seed and step give the same numbers on the interpreter, llvm, cuda and eager.

Every random op reads an `rng` operand, an int64 pair (seed, step), and has a `key`
attribute (an int64 that keeps the ops of one graph apart). Element i of the result is a
function of one Philox block alone: key (seed ^ key) and counter (i, step), each split in
two 32-bit words. So the ops are pure (cse may merge two equal ones: they give equal
numbers) and every element can be computed in parallel. Who supplies `rng` and advances
its step is the frontend's business (frontend/random.py).

Distributions, the same on every backend:
- uniform: float32 from the top 23 bits of word 0 (JAX's `bits >> 9 | 0x3f800000` minus 1,
  written as the exact product `(bits >> 9) * 2**-23`), float64 from 52 bits of words 1, 0;
  bit-identical everywhere.
- normal: Box-Muller on two float64 uniforms (words 0-1 and 2-3), computed in float64 and
  rounded to the dtype: log(1 - u1) never sees 0. Backends agree to float64 rounding of
  log/cos, so float32 results are bit-identical except in rare last-bit ties.
- truncated normal (TF1's: within 2 standard deviations): the first of up to
  TRUNCATED_ROUNDS normals with |z| <= 2, round r of element i from block r * n + i (blocks
  no other element uses); when all rounds miss (probability 0.0455**8, about 2e-11) the
  last one clipped to [-2, 2].
- dropout(x): keeps an element when its float uniform is >= p, compared exactly as
  integers (`dropout_threshold`), and scales it by 1 / (1 - p); its VJP is dropout of the
  cotangent with the same rng and key, so the mask is recomputed, never stored.
"""

from __future__ import annotations

import math

import numpy as np

from graphjit.errors import DTypeError, ShapeError
from graphjit.ir.ops import NONDIFF, REQUIRED, OpDef, P, register
from graphjit.ir.types import TensorType, as_dtype, int64

# Philox 4x32 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
WEYL = (0x9E3779B9, 0xBB67AE85)  # the key's increments between rounds
ROUNDS = 10
MASK32 = 0xFFFFFFFF
RNG_SHAPE = (2,)  # the rng operand: (seed, step), int64
TRUNCATION = 2.0  # truncated_normal: standard deviations kept (TF1's)
TRUNCATED_ROUNDS = 8
TWO_PI = 2.0 * math.pi
FLOAT_BITS = {"float32": 23, "float64": 52}  # mantissa bits a uniform is made from


def philox4x32(counter, key) -> tuple:
    """Philox4x32-10 on arrays: `counter` four arrays of 32-bit words, `key` two; returns
    four uint32 arrays. Products are exact in uint64 (32 x 32 -> 64 bits)."""
    c0, c1, c2, c3 = (np.asarray(c, np.uint64) for c in counter)
    k0, k1 = (np.asarray(k, np.uint64) for k in key)
    m0, m1 = np.uint64(MULTIPLIERS[0]), np.uint64(MULTIPLIERS[1])
    mask, shift = np.uint64(MASK32), np.uint64(32)
    for r in range(ROUNDS):
        if r:
            k0, k1 = (k0 + np.uint64(WEYL[0])) & mask, (k1 + np.uint64(WEYL[1])) & mask
        p0, p1 = c0 * m0, c2 * m1
        c0, c1, c2, c3 = (p1 >> shift) ^ c1 ^ k0, p1 & mask, (p0 >> shift) ^ c3 ^ k1, p0 & mask
    return tuple(c.astype(np.uint32) for c in (c0, c1, c2, c3))


def split64(value) -> tuple:
    """The low and high 32-bit words of a 64-bit integer (any sign: two's complement)."""
    v = int(value) & ((1 << 64) - 1)
    return v & MASK32, v >> 32


def blocks(rng, key: int, index) -> tuple:
    """The four words of the Philox blocks numbered `index` (a uint64 array) for an op
    with `rng` (seed, step) and attribute `key`."""
    seed, step = (int(v) for v in np.asarray(rng).reshape(-1))
    counter = (index & np.uint64(MASK32), index >> np.uint64(32), *split64(step))
    return philox4x32(counter, split64(seed ^ key))


def element_blocks(rng, key: int, n: int, first: int = 0) -> tuple:
    return blocks(rng, key, np.arange(first, first + n, dtype=np.uint64))


def uniform_from(words, dtype) -> np.ndarray:
    """Floats in [0, 1) from the top mantissa bits of a block's words."""
    if as_dtype(dtype).name == "float64":
        bits = (words[1].astype(np.uint64) << np.uint64(20)) | (words[0] >> np.uint32(12))
        return bits.astype(np.float64) * 2.0**-52
    return (words[0] >> np.uint32(9)).astype(np.float32) * np.float32(2.0**-23)


def normal_from(words) -> np.ndarray:
    """Box-Muller in float64 from words 0-1 (u1) and 2-3 (u2); 1 - u1 lies in (0, 1]."""
    u1 = uniform_from(words[:2], "float64")
    u2 = uniform_from(words[2:], "float64")
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(TWO_PI * u2)


def dropout_threshold(p: float, dtype) -> int:
    """Keep an element when its uniform's integer mantissa bits are >= this: the same as
    `uniform >= p`, exactly (p * 2**bits is exact in double)."""
    bits = FLOAT_BITS[as_dtype(dtype).name]
    return min(math.ceil(p * 2.0**bits), 1 << bits)


def dropout_scale(p: float) -> float:
    """What survivors are multiplied by (in the dtype); p = 1 keeps nothing (scale unused)."""
    return 1.0 / (1.0 - p) if p < 1.0 else 0.0


def mantissa_bits(words, dtype) -> np.ndarray:
    """The integer whose scaled value is `uniform_from(words, dtype)`."""
    if as_dtype(dtype).name == "float64":
        return (words[1].astype(np.int64) << 20) | (words[0] >> np.uint32(12)).astype(np.int64)
    return (words[0] >> np.uint32(9)).astype(np.int64)


# ---- reference kernels ---------------------------------------------------------------------


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def uniform_kernel(rng, shape, dtype, key):
    n = _size(shape)
    return uniform_from(element_blocks(rng, key, n), dtype).reshape(shape)


def normal_kernel(rng, shape, dtype, key):
    n = _size(shape)
    z = normal_from(element_blocks(rng, key, n))
    return z.astype(as_dtype(dtype).np).reshape(shape)


def truncated_normal_kernel(rng, shape, dtype, key):
    n = _size(shape)
    z = np.zeros(n, np.float64)
    pending = np.arange(n, dtype=np.uint64)  # elements still without an accepted normal
    for r in range(TRUNCATED_ROUNDS):
        z[pending] = normal_from(blocks(rng, key, pending + np.uint64(r * n)))
        pending = pending[np.abs(z[pending]) > TRUNCATION]
        if not pending.size:
            break
    z = np.clip(z, -TRUNCATION, TRUNCATION)  # (only the rare element no round accepted)
    return z.astype(as_dtype(dtype).np).reshape(shape)


def dropout_kernel(x, rng, p, key):
    x = np.asarray(x)
    words = element_blocks(rng, key, x.size)
    keep = mantissa_bits(words, x.dtype) >= dropout_threshold(p, x.dtype)
    scale = x.dtype.type(dropout_scale(p))
    with np.errstate(all="ignore"):  # (inf * scale in a dropped element is never used)
        return np.where(keep.reshape(x.shape), x * scale, x.dtype.type(0))


# ---- shape rules and registration ----------------------------------------------------------


def _check_rng(t) -> None:
    if t.dtype != int64 or tuple(t.shape) != RNG_SHAPE:
        raise DTypeError(f"the rng operand is an int64 (seed, step) pair, got {t}")


def _random_infer(types, attrs):
    _check_rng(types[0])
    dtype = as_dtype(attrs["dtype"])
    if dtype.name not in FLOAT_BITS:
        raise DTypeError(f"random floats are float32 or float64, not {dtype.name}")
    shape = tuple(attrs["shape"])
    if not all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape):
        raise ShapeError(f"a random op needs a static shape of non-negative ints, got {shape}")
    return [TensorType(tuple(int(d) for d in shape), dtype)]


def _dropout_infer(types, attrs):
    x, rng = types
    _check_rng(rng)
    if x.dtype.name not in FLOAT_BITS:
        raise DTypeError(f"dropout needs a float32 or float64 tensor, got {x.dtype.name}")
    if not 0.0 <= attrs["p"] <= 1.0:
        raise ShapeError(f"dropout probability has to be between 0 and 1, got {attrs['p']}")
    return [x]


def _dropout_vjp(cts, ins, outs, attrs):
    """Linear in x with the same mask: the cotangent goes through dropout too."""
    return [P.dropout(cts[0], ins[1], p=attrs["p"], key=attrs["key"]), None]


RANDOM_ATTRS = {"shape": REQUIRED, "dtype": "float32", "key": 0}
for _name, _kernel in [
    ("random_uniform", uniform_kernel),
    ("random_normal", normal_kernel),
    ("random_truncated_normal", truncated_normal_kernel),
]:
    register(OpDef(_name, _random_infer, _kernel, NONDIFF, attrs=dict(RANDOM_ATTRS)))
register(
    OpDef("dropout", _dropout_infer, dropout_kernel, _dropout_vjp, attrs={"p": REQUIRED, "key": 0})
)
