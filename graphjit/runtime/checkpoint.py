"""Checkpoints: every variable in one .npz file, written atomically, with a format version
and a checksum that loading verifies."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from graphjit.errors import CheckpointError

FORMAT_VERSION = 1
_META = "__graphjit_meta__"


def _checksum(arrays: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return digest.hexdigest()


def save(path: str, arrays: dict) -> str:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path`, so a
    crash mid-write leaves the previous checkpoint intact."""
    path = os.fspath(path)
    meta = {"format_version": FORMAT_VERSION, "checksum": _checksum(arrays)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{_META: np.array(json.dumps(meta))})
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".gjckpt", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(path: str, expected: dict) -> dict:
    """Read a checkpoint; `expected` maps variable names to (shape, dtype)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path!r}") from None
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"checkpoint {path!r} is corrupt: {e}") from None
    if _META not in arrays:
        raise CheckpointError(f"{path!r} is not a graphjit checkpoint")
    try:
        meta = json.loads(str(arrays.pop(_META)))
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path!r} has corrupt metadata: {e}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path!r} has corrupt metadata")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format {meta.get('format_version')} is not supported")
    if meta.get("checksum") != _checksum(arrays):
        raise CheckpointError(f"checkpoint {path!r} fails its checksum: it is corrupt")
    for name, (shape, dtype) in expected.items():
        if name not in arrays:
            raise CheckpointError(f"checkpoint {path!r} has no variable '{name}'")
        if arrays[name].shape != tuple(shape) or arrays[name].dtype != dtype:
            raise CheckpointError(
                f"variable '{name}' in the checkpoint is {arrays[name].dtype}{arrays[name].shape},"
                f" the graph's is {np.dtype(dtype)}{tuple(shape)}"
            )
    return {name: arrays[name] for name in expected}
