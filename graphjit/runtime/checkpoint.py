"""Checkpoints: every variable in one .npz file (a zip of .npy members, the metadata
first), written atomically, with a format version and a checksum that loading verifies.

Loading trusts nothing in the file until it has been checked against the graph, and checks
before it inflates: the file must be a regular file and a zip; the metadata member (at
most META_MAX_BYTES) is read first, and its format version checked; every member must be
one of the graph's variables (an unexpected or missing one is an error); each member's
declared size (the zip's) must fit its compressed size (a compression-ratio bomb is
refused before inflating), and its .npy header, read from the member's first bytes, must
give the variable's dtype and shape and account for the declared size exactly. Only then
are the arrays read, each into one buffer of the size the graph expects, and the checksum
verified. So a crafted file costs at most the memory the graph's variables need.

Saving writes a temporary file beside the target (named TMP_PREFIX + host + pid + random
+ TMP_SUFFIX, created with mode 0666 so that the umask, or the directory's default ACL,
applies as to any file the user creates), fsyncs it and renames it over the target. A
save removes the temporaries that earlier saves killed mid-write left in the directory:
those whose writer (same host) is no longer running, and any untouched for STALE_SECONDS."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import secrets
import socket
import stat
import time
import zipfile
import zlib

import numpy as np

from graphjit.errors import CheckpointError

FORMAT_VERSION = 1
_META = "__graphjit_meta__"
_SUFFIX = ".npy"
META_MAX_BYTES = 1 << 16  # the metadata is a short JSON string
NPY_HEADER_MAX = 1 << 16  # an .npy header is at most 64 KiB (format 1.0's length field)
DEFLATE_MAX_RATIO = 1032  # no deflate stream inflates more than this (RFC 1951 limit)
TMP_PREFIX = ".tmp-graphjit-"
TMP_SUFFIX = ".gjckpt"
STALE_SECONDS = 3600.0  # a temporary untouched this long has no live writer
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMPORARY = re.compile(
    re.escape(TMP_PREFIX) + r"([0-9a-f]{8})-(\d+)-[0-9a-f]+" + re.escape(TMP_SUFFIX) + r"\Z"
)
_OLD_TEMPORARY = re.compile(r"\.tmp-[A-Za-z0-9_]{8}" + re.escape(TMP_SUFFIX) + r"\Z")  # mkstemp's


def _checksum(arrays: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return digest.hexdigest()


# ---- saving -----------------------------------------------------------------------------------


def save(path: str, arrays: dict) -> str:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path`, so a
    crash mid-write leaves the previous checkpoint intact."""
    path = os.fspath(path)
    meta = {"format_version": FORMAT_VERSION, "checksum": _checksum(arrays)}
    buffer = io.BytesIO()
    np.savez(buffer, **{_META: np.array(json.dumps(meta))}, **arrays)  # the metadata first
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(directory)
    fd, tmp = _create_temporary(directory)
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
    _fsync_directory(directory)
    return path


def _create_temporary(directory: str) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        name = f"{TMP_PREFIX}{_HOST}-{os.getpid()}-{secrets.token_hex(6)}{TMP_SUFFIX}"
        tmp = os.path.join(directory, name)
        try:
            return os.open(tmp, flags, 0o666), tmp  # (the kernel applies the umask)
        except FileExistsError:
            continue


def remove_stale_temporaries(directory: str) -> None:
    """Delete the temporary files of saves that were killed: ours (by name) whose writer on
    this host is gone, and any untouched for STALE_SECONDS."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None and not _OLD_TEMPORARY.match(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        dead = False
        if match is not None and match.group(1) == _HOST:
            pid = int(match.group(2))
            dead = pid != os.getpid() and not _alive(pid)
        if dead or now - st.st_mtime > STALE_SECONDS:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or a pid we cannot ask about): leave it
    return True


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- loading ----------------------------------------------------------------------------------


def load(path: str, expected: dict) -> dict:
    """Read a checkpoint; `expected` maps variable names to (shape, dtype)."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path!r}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path!r}: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block, a device never end
        os.close(fd)
        raise CheckpointError(f"checkpoint {path!r} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            with zipfile.ZipFile(f) as z:
                return _Reader(z, path, st.st_size).load(expected)
        except CheckpointError:
            raise
        except (
            OSError,
            ValueError,
            RuntimeError,
            EOFError,
            NotImplementedError,
            zipfile.BadZipFile,
            zlib.error,
        ) as e:
            raise CheckpointError(f"checkpoint {path!r} is corrupt: {e}") from None


class _Reader:
    def __init__(self, z: zipfile.ZipFile, path: str, file_size: int):
        self.z, self.path, self.file_size = z, path, file_size

    def corrupt(self, why: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {self.path!r} is corrupt: {why}")

    def load(self, expected: dict) -> dict:
        infos = self.z.infolist()
        members = {info.filename: info for info in infos}
        if len(members) != len(infos):
            raise self.corrupt("it has two members of the same name")
        if sum(info.compress_size for info in infos) > self.file_size:
            raise self.corrupt("its members are larger than the file")
        meta_info = members.pop(_META + _SUFFIX, None)
        if meta_info is None:
            raise CheckpointError(f"{self.path!r} is not a graphjit checkpoint")
        meta = self.read_meta(meta_info)
        if meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint format {meta.get('format_version')} is not supported"
            )
        for name in expected:
            if name + _SUFFIX not in members:
                raise CheckpointError(f"checkpoint {self.path!r} has no variable '{name}'")
        for member in members:
            if member[: -len(_SUFFIX)] not in expected or not member.endswith(_SUFFIX):
                shown = member[: -len(_SUFFIX)] if member.endswith(_SUFFIX) else member
                raise CheckpointError(
                    f"checkpoint {self.path!r} has a variable '{shown}' that the graph does "
                    "not have"
                )
        # Every declared size and every header first, then the data: nothing large is
        # read from a file that fails a check.
        headers = {
            name: self.read_header(members[name + _SUFFIX], name, shape, dtype)
            for name, (shape, dtype) in expected.items()
        }
        arrays = {
            name: self.read_data(members[name + _SUFFIX], *headers[name]) for name in expected
        }
        if meta.get("checksum") != _checksum(arrays):
            raise CheckpointError(f"checkpoint {self.path!r} fails its checksum: it is corrupt")
        return arrays

    def check_declared_size(self, info: zipfile.ZipInfo, limit: int) -> None:
        """Before inflating: the member's declared size is at most `limit`, and no more
        than its compressed bytes can hold."""
        if info.compress_type == zipfile.ZIP_STORED:
            if info.file_size != info.compress_size:
                raise self.corrupt(f"member {info.filename!r} has inconsistent sizes")
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            if info.file_size > info.compress_size * DEFLATE_MAX_RATIO + 64:
                raise self.corrupt(
                    f"member {info.filename!r} declares {info.file_size} bytes, more than its "
                    f"{info.compress_size} compressed bytes can hold"
                )
        else:
            raise self.corrupt(
                f"member {info.filename!r} uses an unsupported compression ({info.compress_type})"
            )
        if info.file_size > limit:
            raise self.corrupt(
                f"member {info.filename!r} declares {info.file_size} bytes, more than the "
                f"{limit} it can need"
            )

    def read_meta(self, info: zipfile.ZipInfo) -> dict:
        self.check_declared_size(info, META_MAX_BYTES)
        with self.z.open(info) as member:
            data = member.read(META_MAX_BYTES + 1)
        try:
            text = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
            if text.dtype.kind != "U" or text.shape != ():
                raise ValueError(f"a {text.dtype}{text.shape} array, not a string")
            meta = json.loads(str(text))
        except ValueError as e:
            raise CheckpointError(f"checkpoint {self.path!r} has corrupt metadata: {e}") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"checkpoint {self.path!r} has corrupt metadata")
        return meta

    def read_header(self, info: zipfile.ZipInfo, name: str, shape, dtype):
        """(dtype, shape, Fortran order, offset of the data) from the member's .npy header,
        which must agree with the variable's; the declared size must be exactly header and
        data."""
        shape, dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        self.check_declared_size(info, NPY_HEADER_MAX + nbytes)
        with self.z.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(member, NPY_HEADER_MAX)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(member, NPY_HEADER_MAX)
            else:
                raise self.corrupt(f"member {info.filename!r} is .npy format {version}")
            offset = member.tell()
        saved_shape, fortran, saved_dtype = header
        if saved_dtype.hasobject or saved_shape != shape or saved_dtype != dtype:
            raise CheckpointError(
                f"variable '{name}' in checkpoint {self.path!r} is "
                f"{saved_dtype}{saved_shape}, the graph's is {dtype}{shape}"
            )
        if info.file_size != offset + nbytes:
            raise self.corrupt(
                f"member {info.filename!r} declares {info.file_size} bytes, its header "
                f"{offset + nbytes}"
            )
        return dtype, shape, fortran, offset

    def read_data(self, info: zipfile.ZipInfo, dtype, shape, fortran, offset) -> np.ndarray:
        buffer = bytearray(math.prod(shape) * dtype.itemsize)
        view, got = memoryview(buffer), 0
        with self.z.open(info) as member:
            member.seek(offset)  # (re-reads only the header)
            while got < len(buffer):
                n = member.readinto(view[got:])
                if not n:
                    raise self.corrupt(f"member {info.filename!r} ends early")
                got += n
        return np.frombuffer(buffer, dtype).reshape(shape, order="F" if fortran else "C")
