"""Checkpoints: every variable in one .npz file (a zip of .npy members, the metadata
first), written atomically. The metadata (format version 2) lists every variable with its
dtype, shape and the SHA-256 of its data bytes (the .npy member's bytes after its header),
so each variable can be verified alone.

Loading trusts nothing in the file until it has been checked against the graph, and checks
before it inflates: the file must be a regular file and a zip; the metadata member (at
most META_MAX_BYTES of JSON in a 0-d string .npy, whose header is checked before its data
is read) is read first, and its format version and its structure (types, ranges) checked;
every member must be listed in the metadata, and every variable the graph expects must be
listed, with the graph's dtype and shape. Only the expected variables' members are read:
each one's declared size (the zip's) must fit its compressed size (a compression-ratio
bomb is refused before inflating), and its .npy header, read from the member's first
bytes, must give the variable's dtype and shape and account for the declared size
exactly. Then its data is read into one buffer of the size the graph expects and its
SHA-256 checked. Members the graph does not have (a training graph's optimizer slots,
restored into an inference graph) are never opened, so a crafted file costs at most the
memory the graph's variables need, plus the metadata.

Format 1 files (one checksum over all arrays) still load, but only into a graph with
exactly their variables: their checksum cannot be verified without reading every member.

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
from graphjit.files import process_alive

FORMAT_VERSION = 2  # what save writes
SUPPORTED_VERSIONS = (1, 2)  # what load reads
_META = "__graphjit_meta__"
_SUFFIX = ".npy"
META_MAX_BYTES = 1 << 20  # the metadata's JSON: ~115 bytes + the name a variable
MAX_DIMS = 64  # NumPy's limit on an array's rank
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


_DTYPE_STR = re.compile(r"[<>|=]?[A-Za-z][A-Za-z0-9\[\]]{0,30}\Z")  # numpy's dtype.str
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def _checksum(arrays: dict) -> str:
    """Format 1's checksum: one digest over every array (so verifying needs all of them)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return digest.hexdigest()


def _stored(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array whose bytes are the data np.save writes for `array` (Fortran
    order for a Fortran-contiguous array, C order otherwise)."""
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        return array.T
    return np.ascontiguousarray(array)


def _sha256(data) -> str:
    """The SHA-256 of a C-contiguous array's (or a buffer's) bytes."""
    if isinstance(data, np.ndarray):
        data = data.reshape(-1).view(np.uint8)
    return hashlib.sha256(data).hexdigest()


def _describe(array: np.ndarray) -> dict:
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "sha256": _sha256(_stored(array)),
    }


# ---- saving -----------------------------------------------------------------------------------


def save(path: str, arrays: dict) -> str:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path`, so a
    crash mid-write leaves the previous checkpoint intact."""
    path = os.fspath(path)
    arrays = {name: np.asanyarray(a) for name, a in arrays.items()}
    variables = {name: _describe(a) for name, a in arrays.items()}
    meta = json.dumps({"format_version": FORMAT_VERSION, "variables": variables})
    if len(meta) > META_MAX_BYTES:
        raise CheckpointError(
            f"cannot save {len(arrays)} variables: their metadata would be {len(meta)} bytes, "
            f"more than the {META_MAX_BYTES} a checkpoint may hold"
        )
    buffer = io.BytesIO()
    # the metadata first, as ASCII JSON bytes (json.dumps escapes any other character)
    np.savez(buffer, **{_META: np.array(meta.encode("ascii"))}, **arrays)
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
            dead = pid != os.getpid() and not process_alive(pid)
        if dead or now - st.st_mtime > STALE_SECONDS:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


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


def _short(value) -> str:
    """A value from the file, for a message: repr, cut short."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return text if len(text) <= 40 else text[:37] + "..."


def _dtype_name(text: str) -> str:
    try:
        return str(np.dtype(text))
    except Exception:  # only for the message: any dtype string numpy cannot read
        return repr(text)


class _Reader:
    def __init__(self, z: zipfile.ZipFile, path: str, file_size: int):
        self.z, self.path, self.file_size = z, path, file_size

    def corrupt(self, why: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {self.path!r} is corrupt: {why}")

    def bad_meta(self, why: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {self.path!r} has corrupt metadata: {why}")

    def mismatch(self, name, saved_dtype, saved_shape, dtype, shape) -> CheckpointError:
        return CheckpointError(
            f"variable '{name}' in checkpoint {self.path!r} is "
            f"{saved_dtype}{saved_shape}, the graph's is {dtype}{shape}"
        )

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
        version = meta.get("format_version")
        if type(version) is not int or version not in SUPPORTED_VERSIONS:
            raise CheckpointError(
                f"checkpoint {self.path!r}: format {_short(version)} is not supported"
            )
        expected = {
            name: (tuple(int(d) for d in shape), np.dtype(dtype))
            for name, (shape, dtype) in expected.items()
        }
        if version == 1:
            return self.load_v1(members, meta, expected)
        return self.load_v2(members, meta, expected)

    # -- format 2: a checksum per variable; members the graph lacks are left unread ----------

    def load_v2(self, members: dict, meta: dict, expected: dict) -> dict:
        listed = self.listed_variables(meta)
        for member in members:
            if not member.endswith(_SUFFIX) or member[: -len(_SUFFIX)] not in listed:
                raise self.corrupt(f"it has a member {member!r} that its metadata does not list")
        for name in listed:
            if name + _SUFFIX not in members:
                raise self.corrupt(f"its metadata lists a variable '{name}' that it does not hold")
        for name, (shape, dtype) in expected.items():
            if name not in listed:
                raise CheckpointError(f"checkpoint {self.path!r} has no variable '{name}'")
            saved_dtype, saved_shape, _ = listed[name]
            if saved_dtype != dtype.str or saved_shape != shape:
                raise self.mismatch(name, _dtype_name(saved_dtype), saved_shape, dtype, shape)

        def verified(name: str, data) -> None:
            if _sha256(data) != listed[name][2]:
                raise CheckpointError(
                    f"checkpoint {self.path!r} fails its checksum for variable '{name}': "
                    "it is corrupt"
                )

        return self.read_expected(members, expected, verified)

    def read_expected(self, members: dict, expected: dict, check=None) -> dict:
        """The graph's variables: every declared size and every header first, then the
        data (each passed to `check(name, data)` before it is used): nothing large is read
        from a file that fails a check, and nothing at all from members the graph lacks."""
        headers = {
            name: self.read_header(members[name + _SUFFIX], name, shape, dtype)
            for name, (shape, dtype) in expected.items()
        }
        arrays = {}
        for name, (shape, dtype) in expected.items():
            fortran, offset = headers[name]
            data = self.read_data(
                members[name + _SUFFIX], math.prod(shape) * dtype.itemsize, offset
            )
            if check is not None:
                check(name, data)
            arrays[name] = _array(data, dtype, shape, fortran)
        return arrays

    def listed_variables(self, meta: dict) -> dict:
        """The metadata's variables, {name: (dtype string, shape, sha256)}, each checked
        for type and range (the names are JSON object keys, so strings)."""
        variables = meta.get("variables")
        if not isinstance(variables, dict):
            raise self.bad_meta("it has no 'variables' object")
        listed = {}
        for name, entry in variables.items():
            if not isinstance(entry, dict):
                raise self.bad_meta(f"variable {_short(name)} is {_short(entry)}")
            dtype, shape, digest = entry.get("dtype"), entry.get("shape"), entry.get("sha256")
            if not isinstance(dtype, str) or not _DTYPE_STR.match(dtype):
                raise self.bad_meta(f"variable {_short(name)} has dtype {_short(dtype)}")
            if (
                not isinstance(shape, list)
                or len(shape) > MAX_DIMS
                or not all(type(d) is int and 0 <= d < 1 << 63 for d in shape)
            ):
                raise self.bad_meta(f"variable {_short(name)} has shape {_short(shape)}")
            if not isinstance(digest, str) or not _SHA256.match(digest):
                raise self.bad_meta(f"variable {_short(name)} has sha256 {_short(digest)}")
            listed[name] = (dtype, tuple(shape), digest)
        return listed

    # -- format 1: one checksum over every array, so every member must be the graph's -----

    def load_v1(self, members: dict, meta: dict, expected: dict) -> dict:
        for name in expected:
            if name + _SUFFIX not in members:
                raise CheckpointError(f"checkpoint {self.path!r} has no variable '{name}'")
        for member in members:
            if member[: -len(_SUFFIX)] not in expected or not member.endswith(_SUFFIX):
                shown = member[: -len(_SUFFIX)] if member.endswith(_SUFFIX) else member
                raise CheckpointError(
                    f"checkpoint {self.path!r} has a variable '{shown}' that the graph does "
                    "not have (a format 1 checkpoint restores only into a graph with exactly "
                    "its variables)"
                )
        arrays = self.read_expected(members, expected)
        if meta.get("checksum") != _checksum(arrays):
            raise CheckpointError(f"checkpoint {self.path!r} fails its checksum: it is corrupt")
        return arrays

    # -- members -----------------------------------------------------------------------

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

    def npy_header(self, member, info: zipfile.ZipInfo):
        """(shape, Fortran order, dtype, offset of the data) from an open member's .npy
        header (at most NPY_HEADER_MAX bytes; NumPy refuses object dtypes' headers only
        when reading data, so the callers check the dtype)."""
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(member, NPY_HEADER_MAX)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(member, NPY_HEADER_MAX)
        else:
            raise self.corrupt(f"member {info.filename!r} is .npy format {version}")
        return (*header, member.tell())

    def read_meta(self, info: zipfile.ZipInfo) -> dict:
        """The metadata: a 0-d string .npy (bytes in format 2, str in format 1) holding a
        JSON object. Its header is checked before anything is allocated for its data."""
        self.check_declared_size(info, NPY_HEADER_MAX + META_MAX_BYTES)
        with self.z.open(info) as member:
            shape, _, dtype, offset = self.npy_header(member, info)
            if dtype.kind not in "SU" or shape != ():
                raise self.bad_meta(f"a {dtype}{shape} array, not a string")
            if dtype.itemsize > META_MAX_BYTES:
                raise self.bad_meta(
                    f"{dtype.itemsize} bytes, more than the {META_MAX_BYTES} allowed"
                )
            if info.file_size != offset + dtype.itemsize:
                raise self.corrupt(
                    f"member {info.filename!r} declares {info.file_size} bytes, its header "
                    f"{offset + dtype.itemsize}"
                )
            data = member.read(dtype.itemsize)
        if len(data) != dtype.itemsize:
            raise self.corrupt(f"member {info.filename!r} ends early")
        try:
            text = np.frombuffer(data, dtype)[0]
            if dtype.kind == "S":
                text = bytes(text).decode("utf-8")
            meta = json.loads(str(text))
        except (ValueError, RecursionError) as e:  # (UnicodeError is a ValueError)
            raise self.bad_meta(str(e)[:200]) from None
        if not isinstance(meta, dict):
            raise self.bad_meta(f"{type(meta).__name__}, not an object")
        return meta

    def read_header(self, info: zipfile.ZipInfo, name: str, shape: tuple, dtype: np.dtype):
        """(Fortran order, offset of the data) from the member's .npy header, which must
        agree with the variable's dtype and shape; the declared size must be exactly header
        and data."""
        nbytes = math.prod(shape) * dtype.itemsize
        self.check_declared_size(info, NPY_HEADER_MAX + nbytes)
        with self.z.open(info) as member:
            saved_shape, fortran, saved_dtype, offset = self.npy_header(member, info)
        if saved_dtype.hasobject or saved_shape != shape or saved_dtype != dtype:
            raise self.mismatch(name, saved_dtype, saved_shape, dtype, shape)
        if info.file_size != offset + nbytes:
            raise self.corrupt(
                f"member {info.filename!r} declares {info.file_size} bytes, its header "
                f"{offset + nbytes}"
            )
        return fortran, offset

    def read_data(self, info: zipfile.ZipInfo, nbytes: int, offset: int) -> bytearray:
        """The member's `nbytes` of data after its header, into one buffer."""
        buffer = bytearray(nbytes)
        view, got = memoryview(buffer), 0
        with self.z.open(info) as member:
            member.seek(offset)  # (re-reads only the header)
            while got < len(buffer):
                n = member.readinto(view[got:])
                if not n:
                    raise self.corrupt(f"member {info.filename!r} ends early")
                got += n
        return buffer


def _array(data: bytearray, dtype: np.dtype, shape: tuple, fortran: bool) -> np.ndarray:
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
