"""Compile caches for native code.

In memory: one process-wide LRU of compiled modules keyed by their LLVM IR, so sessions
that compile the same program share it; evicting an entry only drops the cache's
reference (a runner still using the code keeps it alive). Its size is
GRAPHJIT_JIT_CACHE_SIZE (config.py), read when first needed.

On disk (when GRAPHJIT_CACHE_DIR is set): MCJIT's object code, keyed by a hash of the IR,
the host CPU and features and the library versions. Loading an entry runs its code in this
process, so nothing in the directory is trusted until it is authenticated:

- The directory is created 0700 and refused (a warning; compiles then use no disk cache)
  unless it is a directory owned by this user and not writable by group or others (the
  rule pip and OpenSSH apply). Every access goes through one descriptor opened on it and
  checked with fstat, so renaming the path after the check changes nothing.
- A per-user secret, KEY_BYTES random bytes in KEY_NAME, created 0600 and published
  atomically (written to a temporary file, then hard-linked under its name, which fails if
  another process got there first: its key is used then). It is refused unless it is a
  regular file of ours, neither readable nor writable by group or others, of exactly
  KEY_BYTES bytes.
- An entry is FORMAT + HMAC-SHA256(secret, FORMAT + cache key + NUL + object code) +
  object code, so a planted file, a damaged one or one copied from another key fails to
  authenticate. Entries are opened with O_NOFOLLOW and O_NONBLOCK (a symlink fails, a FIFO
  does not block) and accepted only as regular files of ours of at most MAX_ENTRY_BYTES,
  read with a bounded read.
- A bad entry costs a recompile, nothing more: it is deleted, the module compiled again
  (and stored afresh), and a CacheWarning says so (Python's default filter shows each
  kind of problem once).

Files are written atomically: a temporary file in the directory, fsynced, then renamed;
temporaries left by a killed writer are removed by the next writer.

A module compiled in parts (target.py, compile_worker.py) has several objects: they are
stored as one entry, one payload (pack_objects: OBJECTS_MAGIC, their count and sizes, then
the objects), authenticated as a whole like any other; a payload without the magic is one
object (no object file format starts with it)."""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import re
import secrets
import stat
import struct
import threading
import time
import warnings
from collections import OrderedDict

import llvmlite

from graphjit import config
from graphjit.files import process_alive
from graphjit.version import __version__

FORMAT = b"graphjit-object-v2\n"
MAC_BYTES = 32  # HMAC-SHA256
KEY_NAME = "graphjit-cache.key"
KEY_BYTES = 32
MAX_ENTRY_BYTES = 256 << 20  # object code larger than this is neither stored nor loaded
SUFFIX = ".gjobj"
OBJECTS_MAGIC = b"graphjit-objects\0"  # a payload of several objects (pack_objects)
_COUNT, _SIZE = struct.Struct("<I"), struct.Struct("<Q")
TMP_PREFIX = ".tmp-"
STALE_SECONDS = 3600.0  # a temporary file untouched this long belongs to no live writer

# None: GRAPHJIT_JIT_CACHE_SIZE (default 256). Tests set a number here.
MEMORY_ENTRIES: int | None = None

_memory: OrderedDict = OrderedDict()
_lock = threading.Lock()
_swept: set = set()  # (st_dev, st_ino) of directories whose stale temporaries are gone


class CacheWarning(UserWarning):
    """The disk cache refused a directory, a key file or an entry (and compiled anyway)."""


def memory_get(key: str):
    with _lock:
        entry = _memory.get(key)
        if entry is not None:
            _memory.move_to_end(key)
        return entry


def memory_put(key: str, compiled) -> None:
    limit = MEMORY_ENTRIES if MEMORY_ENTRIES is not None else config.jit_cache_size()
    with _lock:
        _memory[key] = compiled
        _memory.move_to_end(key)
        while len(_memory) > limit:
            _memory.popitem(last=False)


def memory_clear() -> None:
    with _lock:
        _memory.clear()


def memory_size() -> int:
    return len(_memory)


def cache_key(ir_text: str, cpu: str, features: str, pipeline: str = "") -> str:
    """The key of a module's native code: its IR, the machine, the versions, and the
    pipeline's own version (target.PIPELINE: code made by another pipeline is not reused,
    and a build that does not know a multi-object payload never finds one)."""
    digest = hashlib.sha256()
    for part in (ir_text, cpu, features, llvmlite.__version__, __version__, pipeline):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def pack_objects(objects: list[bytes]) -> bytes:
    """One payload for a module's objects: a single object as it is, several framed."""
    if len(objects) == 1:
        return objects[0]
    sizes = b"".join(_SIZE.pack(len(o)) for o in objects)
    return OBJECTS_MAGIC + _COUNT.pack(len(objects)) + sizes + b"".join(objects)


def unpack_objects(payload: bytes) -> list[bytes] | None:
    """The objects of a pack_objects payload; None if its framing does not add up."""
    if not payload.startswith(OBJECTS_MAGIC):
        return [payload]
    at = len(OBJECTS_MAGIC) + _COUNT.size
    if len(payload) < at:
        return None
    (count,) = _COUNT.unpack_from(payload, len(OBJECTS_MAGIC))
    if count < 1 or len(payload) < at + count * _SIZE.size:
        return None
    sizes = [_SIZE.unpack_from(payload, at + i * _SIZE.size)[0] for i in range(count)]
    at += count * _SIZE.size
    if at + sum(sizes) != len(payload):
        return None
    objects = []
    for size in sizes:
        objects.append(payload[at : at + size])
        at += size
    return objects


# ---- the disk cache ---------------------------------------------------------------------------


def disk_dir() -> str | None:
    """The disk cache's directory if one is configured and usable (else None, with a
    warning when one is configured but refused)."""
    directory = _Directory.open()
    if directory is None:
        return None
    directory.close()
    return directory.path


def disk_load(key: str) -> bytes | None:
    """The object code stored under `key`, if there is an authentic entry; None otherwise
    (a bad entry is deleted, with a warning)."""
    directory = _Directory.open()
    if directory is None:
        return None
    try:
        return directory.load(key)
    finally:
        directory.close()


def disk_load_objects(key: str) -> list[bytes] | None:
    """The objects stored under `key` (disk_load, unpacked); None if there is no authentic
    entry, or its framing is broken (then it is deleted, with a warning)."""
    directory = _Directory.open()
    if directory is None:
        return None
    try:
        payload = directory.load(key)
        if payload is None:
            return None
        objects = unpack_objects(payload)
        if objects is None:
            directory._reject(_entry_name(key), None, "its objects' framing is broken")
        return objects
    finally:
        directory.close()


def disk_store(key: str, payload: bytes) -> None:
    """Store object code under `key`, atomically (a no-op without a usable directory)."""
    directory = _Directory.open()
    if directory is None:
        return
    try:
        directory.store(key, payload)
    finally:
        directory.close()


def _warn(message: str) -> None:
    # The text names the directory and the kind of problem, not the entry: the default
    # warning filter shows each once per process.
    warnings.warn(message, CacheWarning, stacklevel=3)


_NAME = re.compile(r"[0-9A-Za-z_-]{1,128}\Z")
_TEMPORARY = re.compile(re.escape(TMP_PREFIX) + r"(?:key-)?(\d+)-[0-9a-f]+(?:\.gjobj)?\Z")
_OLD_TEMPORARY = re.compile(re.escape(TMP_PREFIX) + r"[^/]*\.gjobj\Z")  # (mkstemp's, before v2)
_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
# Safe opening needs O_NOFOLLOW and opening relative to a directory descriptor (POSIX).
_SAFE_OPEN = hasattr(os, "O_NOFOLLOW") and os.open in os.supports_dir_fd


class _Directory:
    """An open, checked cache directory and its secret key."""

    def __init__(self, path: str, fd: int, secret: bytes):
        self.path, self.fd, self.secret = path, fd, secret

    @classmethod
    def open(cls) -> _Directory | None:
        path = config.cache_dir()
        if path is None:
            return None
        if not _SAFE_OPEN:
            _warn(
                f"not using GRAPHJIT_CACHE_DIR={path}: this platform cannot open files "
                "without following symbolic links; compiling without a disk cache"
            )
            return None
        fd = _open_directory(path)
        if fd is None:
            return None
        try:
            secret = _secret(path, fd)
        except BaseException:
            os.close(fd)
            raise
        if secret is None:
            os.close(fd)
            return None
        return cls(path, fd, secret)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def _mac(self, key: str, payload: bytes) -> bytes:
        mac = hmac.new(self.secret, FORMAT, hashlib.sha256)
        mac.update(key.encode() + b"\0")
        mac.update(payload)
        return mac.digest()

    def load(self, key: str) -> bytes | None:
        name = _entry_name(key)
        try:
            fd = os.open(name, os.O_RDONLY | _FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as e:
            why = "it is a symbolic link" if e.errno == errno.ELOOP else f"it cannot be read ({e})"
            self._reject(name, None, why)
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._reject(name, st, "it is not a regular file")
                return None
            if st.st_uid != os.geteuid():
                self._reject(name, st, f"it is owned by uid {st.st_uid}, not by this user")
                return None
            limit = len(FORMAT) + MAC_BYTES + MAX_ENTRY_BYTES
            if st.st_size > limit:
                self._reject(name, st, f"it is larger than {limit} bytes")
                return None
            data = _read_at_most(fd, limit + 1)
        except OSError as e:
            self._reject(name, None, f"it cannot be read ({e})")
            return None
        finally:
            os.close(fd)
        head, mac = data[: len(FORMAT)], data[len(FORMAT) : len(FORMAT) + MAC_BYTES]
        payload = data[len(FORMAT) + MAC_BYTES :]
        if len(data) > limit:
            why = f"it is larger than {limit} bytes"
        elif head != FORMAT:
            why = f"its format is not {FORMAT.decode().strip()}"
        elif not hmac.compare_digest(mac, self._mac(key, payload)):
            why = "it fails its authentication (HMAC)"
        else:
            return payload
        self._reject(name, st, why)
        return None

    def _reject(self, name: str, st, why: str) -> None:
        """Delete a bad entry (the one that was read: not a good one written since)."""
        try:
            now = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            if st is None or (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                if stat.S_ISDIR(now.st_mode):
                    os.rmdir(name, dir_fd=self.fd)
                else:
                    os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass  # gone already, or not ours to delete: either way it is not loaded
        _warn(
            f"ignoring damaged compile-cache file in {self.path}: {why}; it was deleted "
            "and the module is compiled again"
        )

    def store(self, key: str, payload: bytes) -> None:
        name = _entry_name(key)
        if len(payload) > MAX_ENTRY_BYTES:
            return  # it could never be loaded
        self._sweep()
        tmp = f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}{SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FLAGS, 0o600, dir_fd=self.fd)
        except OSError as e:
            _warn(f"could not write the compile cache in {self.path}: {e}")
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(FORMAT + self._mac(key, payload) + payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as e:
            _unlink(tmp, self.fd)
            _warn(f"could not write the compile cache in {self.path}: {e}")

    def _sweep(self) -> None:
        """Once per process and directory: remove temporary files whose writer is dead (its
        pid is in the name) or that nobody has touched for STALE_SECONDS."""
        st = os.fstat(self.fd)
        if (st.st_dev, st.st_ino) in _swept:
            return
        _swept.add((st.st_dev, st.st_ino))
        try:
            names = os.listdir(self.fd)
        except OSError:
            return
        for name in names:
            match = _TEMPORARY.match(name)
            if match is None and not _OLD_TEMPORARY.match(name):
                continue
            if match is not None and int(match.group(1)) == os.getpid():
                continue
            try:
                age = time.time() - os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mtime
            except OSError:
                continue
            if age > STALE_SECONDS or (
                match is not None and not process_alive(int(match.group(1)))
            ):
                _unlink(name, self.fd)


def _entry_name(key: str) -> str:
    if not _NAME.match(key):
        raise ValueError(f"not a compile-cache key: {key!r}")
    return key + SUFFIX


def _open_directory(path: str) -> int | None:
    """A descriptor on the cache directory (created 0700 if need be), or None (warned) if it
    cannot be used or trusted."""

    def refuse(why: str) -> None:
        _warn(f"not using GRAPHJIT_CACHE_DIR={path}: {why}; compiling without a disk cache")

    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        refuse(f"it cannot be created ({e.strerror or e})")
        return None
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
        )
    except OSError as e:
        refuse(f"it cannot be opened ({e.strerror or e})")
        return None
    st = os.fstat(fd)
    why = None
    if not stat.S_ISDIR(st.st_mode):
        why = "it is not a directory"
    elif st.st_uid != os.geteuid():
        why = f"it is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    elif st.st_mode & 0o022:
        why = (
            f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):03o}); "
            "chmod go-w it to use it"
        )
    elif not os.access(path, os.W_OK | os.X_OK):
        why = "it is not writable"
    if why is not None:
        os.close(fd)
        refuse(why)
        return None
    return fd


def _secret(path: str, fd: int, create: bool = True) -> bytes | None:
    """The directory's secret key (created if there is none), or None (warned) if the key
    file cannot be trusted."""

    def refuse(why: str) -> None:
        _warn(
            f"not using GRAPHJIT_CACHE_DIR={path}: its key file {KEY_NAME} {why}; "
            "compiling without a disk cache"
        )

    try:
        key_fd = os.open(KEY_NAME, os.O_RDONLY | _FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if create:
            return _create_secret(path, fd)
        refuse("was removed while being created")
        return None
    except OSError as e:
        refuse("is a symbolic link" if e.errno == errno.ELOOP else f"cannot be read ({e})")
        return None
    try:
        st = os.fstat(key_fd)
        mode = stat.S_IMODE(st.st_mode)
        if not stat.S_ISREG(st.st_mode):
            why = "is not a regular file"
        elif st.st_uid != os.geteuid():
            why = f"is owned by uid {st.st_uid}, not by this user"
        elif mode & 0o077:
            why = f"is open to group or others (mode {mode:03o}); it must be 0600"
        elif st.st_size != KEY_BYTES:
            why = f"is {st.st_size} bytes, not {KEY_BYTES}"
        else:
            secret = _read_at_most(key_fd, KEY_BYTES + 1)
            if len(secret) == KEY_BYTES:
                return secret
            why = f"is {len(secret)} bytes, not {KEY_BYTES}"
    except OSError as e:
        why = f"cannot be read ({e})"
    finally:
        os.close(key_fd)
    refuse(why)
    return None


def _create_secret(path: str, fd: int) -> bytes | None:
    """Make the key: KEY_BYTES random bytes written 0600 to a temporary file, then linked
    under KEY_NAME. If another process linked its key first, read that one instead."""
    secret = secrets.token_bytes(KEY_BYTES)
    tmp = f"{TMP_PREFIX}key-{os.getpid()}-{secrets.token_hex(8)}"
    try:
        tmp_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FLAGS, 0o600, dir_fd=fd)
        try:
            _write_all(tmp_fd, secret)
            os.fsync(tmp_fd)
        finally:
            os.close(tmp_fd)
        try:
            os.link(tmp, KEY_NAME, src_dir_fd=fd, dst_dir_fd=fd)
        except FileExistsError:
            return _secret(path, fd, create=False)  # another process won the race
        except OSError:  # a file system without hard links: create it in place
            try:
                key_fd = os.open(
                    KEY_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FLAGS, 0o600, dir_fd=fd
                )
            except FileExistsError:
                return _secret(path, fd, create=False)
            try:
                _write_all(key_fd, secret)
                os.fsync(key_fd)
            finally:
                os.close(key_fd)
    except OSError as e:
        _warn(
            f"not using GRAPHJIT_CACHE_DIR={path}: its key file {KEY_NAME} cannot be "
            f"created ({e}); compiling without a disk cache"
        )
        return None
    finally:
        _unlink(tmp, fd)
    return secret


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
