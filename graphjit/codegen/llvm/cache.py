"""Compile caches for native code.

In memory: one process-wide LRU of compiled modules keyed by their LLVM IR, so sessions
that compile the same program share it; evicting an entry only drops the cache's
reference (a runner still using the code keeps it alive).

On disk (when GRAPHJIT_CACHE_DIR is set): MCJIT's object code, keyed by a hash of the IR,
the host CPU and features and the library versions. Files are written atomically and
carry a format tag and a checksum; a damaged or foreign file is ignored (with a warning)
and the code is compiled again."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
from collections import OrderedDict

import llvmlite

FORMAT = b"graphjit-object-v1\n"
MEMORY_ENTRIES = int(os.environ.get("GRAPHJIT_JIT_CACHE_SIZE", "256"))

_memory: OrderedDict = OrderedDict()
_lock = threading.Lock()


def memory_get(key: str):
    with _lock:
        entry = _memory.get(key)
        if entry is not None:
            _memory.move_to_end(key)
        return entry


def memory_put(key: str, compiled) -> None:
    with _lock:
        _memory[key] = compiled
        _memory.move_to_end(key)
        while len(_memory) > MEMORY_ENTRIES:
            _memory.popitem(last=False)


def memory_clear() -> None:
    with _lock:
        _memory.clear()


def memory_size() -> int:
    return len(_memory)


def cache_key(ir_text: str, cpu: str, features: str) -> str:
    from graphjit import __version__

    digest = hashlib.sha256()
    for part in (ir_text, cpu, features, llvmlite.__version__, __version__):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def disk_dir() -> str | None:
    return os.environ.get("GRAPHJIT_CACHE_DIR") or None


def _path(directory: str, key: str) -> str:
    return os.path.join(directory, f"{key}.gjobj")


def disk_load(key: str) -> bytes | None:
    directory = disk_dir()
    if directory is None:
        return None
    try:
        with open(_path(directory, key), "rb") as f:
            data = f.read()
    except OSError:
        return None
    head, checksum, payload = (
        data[: len(FORMAT)],
        data[len(FORMAT) : len(FORMAT) + 64],
        data[len(FORMAT) + 64 :],
    )
    if head != FORMAT or checksum != hashlib.sha256(payload).hexdigest().encode():
        warnings.warn(f"ignoring damaged compile-cache file {_path(directory, key)}", stacklevel=2)
        return None
    return payload


def disk_store(key: str, payload: bytes) -> None:
    """Write atomically: a temporary file in the same directory, fsynced, then renamed."""
    directory = disk_dir()
    if directory is None:
        return
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".gjobj", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(FORMAT + hashlib.sha256(payload).hexdigest().encode() + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, _path(directory, key))
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        warnings.warn(f"could not write the compile cache: {e}", stacklevel=2)
