"""Nothing on disk is trusted: the on-disk compile cache (GRAPHJIT_CACHE_DIR) loads native
code into this process, so an entry runs only if it authenticates with the per-user key
(HMAC over format, cache key and object code). Forged, copied, damaged, oversize entries,
FIFOs and symlinks cost a recompile and nothing more; a directory or key file that others
could have written is refused (a warning, no disk cache); the key is created 0600 in a
0700 directory, once, even when several compiles race to create it."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import stat
import threading
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from test_files import cached_run, object_files

import graphjit as gj
from graphjit.codegen.llvm import cache

EXPECTED = np.tanh(0.5) * 3.0 + np.exp(-0.5)  # what cached_run(0.5) computes


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """GRAPHJIT_CACHE_DIR set to a directory that does not exist yet."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("GRAPHJIT_CACHE_DIR", str(directory))
    cache.memory_clear()
    yield directory
    cache.memory_clear()


@contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging the suite) if the block takes longer than `seconds`."""

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def other_run():
    """A second program with the same signature as cached_run (its code, loaded in
    cached_run's place, would run and give other numbers)."""
    cache.memory_clear()
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(np.float64, [3], name="x")
        out = x * 100.0 + 1.0
    with gj.Session(g) as sess:
        return sess.run(out, {x: np.full(3, 0.5)})


@pytest.fixture
def two_entries(cache_dir):
    """(path of cached_run's entry, path of other_run's entry), both authentic."""
    np.testing.assert_allclose(cached_run(0.5), EXPECTED)
    (mine,) = object_files(cache_dir)
    np.testing.assert_allclose(other_run(), 51.0)
    (other,) = set(object_files(cache_dir)) - {mine}
    return mine, other


def key_of(path) -> str:
    return os.path.basename(path)[: -len(cache.SUFFIX)]


def recompiles_with_a_warning(path, match: str) -> None:
    """cached_run refuses what is at `path` (warning `match`), computes the right result,
    and leaves an authentic entry there."""
    with pytest.warns(cache.CacheWarning, match=match):
        np.testing.assert_allclose(cached_run(0.5), EXPECTED)
    assert stat.S_ISREG(os.lstat(path).st_mode)
    assert cache.disk_load(key_of(path)) is not None  # stored afresh, and authentic
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(cached_run(0.5), EXPECTED)


def forge(fmt: bytes, mac) -> callable:
    return lambda payload: fmt + mac(payload) + payload


@pytest.mark.parametrize(
    "forgery",
    [
        forge(b"graphjit-object-v1\n", lambda p: hashlib.sha256(p).hexdigest().encode()),
        forge(cache.FORMAT, lambda p: hashlib.sha256(p).digest()),
        forge(cache.FORMAT, lambda p: hmac.new(b"\0" * 32, p, hashlib.sha256).digest()),
    ],
    ids=["old-style-checksum", "plain-sha256", "hmac-under-another-key"],
)
def test_a_forged_entry_is_refused_deleted_and_recompiled(two_entries, forgery):
    mine, other = two_entries
    planted = cache.disk_load(key_of(other))  # real object code, of the other program
    with open(mine, "wb") as f:
        f.write(forgery(planted))
    recompiles_with_a_warning(mine, "fails its authentication|format is not")


def test_an_entry_copied_under_another_key_is_refused(two_entries):
    mine, other = two_entries
    with open(other, "rb") as src, open(mine, "wb") as dst:
        dst.write(src.read())  # authentic, but for the other key
    recompiles_with_a_warning(mine, "fails its authentication")
    assert cache.disk_load(key_of(other)) is not None  # the original is untouched


def test_a_fifo_entry_does_not_hang_the_compile(two_entries):
    mine, _ = two_entries
    os.unlink(mine)
    os.mkfifo(mine)
    with deadline(20):
        recompiles_with_a_warning(mine, "not a regular file")


@pytest.mark.parametrize("target", ["/dev/zero", "the other entry"])
def test_a_symlink_entry_is_refused(two_entries, target):
    mine, other = two_entries
    os.unlink(mine)
    os.symlink(other if target == "the other entry" else target, mine)
    with deadline(20):
        recompiles_with_a_warning(mine, "symbolic link")
    assert cache.disk_load(key_of(other)) is not None  # the link's target was left alone


def test_an_oversize_entry_is_refused_without_reading_it(two_entries):
    mine, _ = two_entries
    with open(mine, "r+b") as f:
        f.truncate(cache.MAX_ENTRY_BYTES + 4096)  # sparse: costs no disk
    with deadline(20):
        recompiles_with_a_warning(mine, "larger than")


def test_a_directory_as_an_entry_is_refused(two_entries):
    mine, _ = two_entries
    os.unlink(mine)
    os.mkdir(mine)
    recompiles_with_a_warning(mine, "not a regular file")


def test_each_kind_of_bad_entry_is_warned_about_once(two_entries):
    mine, other = two_entries
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's default: once per distinct message
        for path, run in [(mine, lambda: cached_run(0.5)), (other, other_run)]:
            with open(path, "r+b") as f:
                f.seek(-1, os.SEEK_END)
                f.write(b"\xff")  # a flipped byte in the object code
            run()
    refused = [w for w in caught if issubclass(w.category, cache.CacheWarning)]
    assert len(refused) == 1 and "fails its authentication" in str(refused[0].message)


# ---- the directory and the key -----------------------------------------------------------------


def test_the_directory_and_key_are_created_private(cache_dir):
    np.testing.assert_allclose(cached_run(0.5), EXPECTED)
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700
    key = os.stat(cache_dir / cache.KEY_NAME)
    assert stat.S_IMODE(key.st_mode) == 0o600 and key.st_size == cache.KEY_BYTES
    (entry,) = object_files(cache_dir)
    assert stat.S_IMODE(os.stat(entry).st_mode) == 0o600
    assert sorted(os.listdir(cache_dir)) == sorted([cache.KEY_NAME, os.path.basename(entry)])


def test_racing_processes_agree_on_one_key(cache_dir):
    """Eight openers of a fresh directory at once: one key is created, all use it."""
    os.makedirs(cache_dir, mode=0o700)
    barrier, secrets_seen, errors = threading.Barrier(8), [], []

    def open_it():
        try:
            barrier.wait()
            directory = cache._Directory.open()
            secrets_seen.append(directory.secret)
            directory.close()
        except BaseException as e:
            errors.append(e)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors[0]
    assert len(secrets_seen) == 8 and len(set(secrets_seen)) == 1
    assert open(cache_dir / cache.KEY_NAME, "rb").read() == secrets_seen[0]
    assert os.listdir(cache_dir) == [cache.KEY_NAME]  # no temporary left behind


def refused_directory(directory, match: str) -> None:
    """A compile with `directory` as the cache warns `match`, works, and writes nothing."""
    before = sorted(os.listdir(directory))
    with pytest.warns(cache.CacheWarning, match=match):
        np.testing.assert_allclose(cached_run(0.5), EXPECTED)
        assert cache.disk_dir() is None
    assert sorted(os.listdir(directory)) == before


def test_a_directory_writable_by_others_is_refused(cache_dir):
    os.makedirs(cache_dir)
    os.chmod(cache_dir, 0o777)
    refused_directory(cache_dir, r"GRAPHJIT_CACHE_DIR=.*writable by group or others \(mode 777\)")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_directory_owned_by_another_user_is_refused(cache_dir):
    os.makedirs(cache_dir, mode=0o700)
    os.chown(cache_dir, 65534, 65534)
    refused_directory(cache_dir, "owned by uid 65534")


@pytest.mark.parametrize(
    "spoil, match",
    [
        (lambda key: os.chmod(key, 0o644), r"open to group or others \(mode 644\)"),
        (lambda key: os.truncate(key, 16), "is 16 bytes, not 32"),
        (lambda key: (os.unlink(key), os.symlink("/dev/zero", key)), "is a symbolic link"),
        (lambda key: (os.unlink(key), os.mkfifo(key, 0o600)), "not a regular file"),
    ]
    + (
        [(lambda key: os.chown(key, 65534, 65534), "owned by uid 65534")]
        if os.geteuid() == 0
        else []
    ),
    ids=["group-readable", "short", "symlink", "fifo", "other-owner"][: 4 + (os.geteuid() == 0)],
)
def test_an_untrustworthy_key_file_is_refused(cache_dir, spoil, match):
    np.testing.assert_allclose(cached_run(0.5), EXPECTED)
    spoil(str(cache_dir / cache.KEY_NAME))
    with deadline(20):
        refused_directory(cache_dir, f"key file .*{match}")


def test_temporaries_of_dead_writers_are_removed_by_the_next_write(cache_dir, monkeypatch):
    monkeypatch.setattr(cache, "_swept", set())
    os.makedirs(cache_dir, mode=0o700)
    dead = 4_000_000  # above Linux's pid_max ceiling (2^22): no such process
    stale = [f".tmp-{dead}-0123abcd.gjobj", f".tmp-key-{dead}-0123abcd"]
    live = f".tmp-{os.getppid()}-0123abcd.gjobj"  # a writer that is still running
    for name in [*stale, live]:
        (cache_dir / name).write_bytes(b"half an object")
    np.testing.assert_allclose(cached_run(0.5), EXPECTED)
    left = set(os.listdir(cache_dir))
    assert live in left and not left & set(stale)
