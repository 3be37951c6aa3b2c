"""Crash-safe files: checkpoints and the on-disk compile cache are written atomically (a
process killed in the middle of a write leaves the previous file intact, and no partial
file under the target name), and loading verifies a format version and a checksum per
variable."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest

import graphjit as gj
from graphjit.codegen.llvm import cache
from graphjit.runtime import checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Run in a child process: replace os.fdopen so that the next file written gets half its
# bytes, then the process says READY and hangs until the test kills it.
HANG_MIDWAY = """
import os, sys, time
real_fdopen = os.fdopen

class HalfWriter:
    def __init__(self, f):
        self.f = f
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self.f.close()
    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        print("READY", flush=True)
        time.sleep(120)

os.fdopen = lambda *a, **k: HalfWriter(real_fdopen(*a, **k))
"""


def kill_midway(script: str, env_extra: dict | None = None) -> None:
    """Run HANG_MIDWAY + script in a child; SIGKILL it once it is midway through a write."""
    env = {**os.environ, "PYTHONPATH": REPO, **(env_extra or {})}
    child = subprocess.Popen(
        [sys.executable, "-c", HANG_MIDWAY + textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == "READY", child.stderr.read()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def leftovers(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith(".tmp-"))


# ---- checkpoints ---------------------------------------------------------------------------


def test_killed_checkpoint_write_leaves_the_previous_checkpoint(tmp_path):
    path = str(tmp_path / "model.ckpt")
    checkpoint.save(path, {"w": np.arange(4.0)})
    before = open(path, "rb").read()
    kill_midway(
        f"""
        import numpy as np
        from graphjit.runtime import checkpoint
        checkpoint.save({path!r}, {{"w": np.full(4, 7.0)}})
        """
    )
    assert open(path, "rb").read() == before  # the target was never touched
    loaded = checkpoint.load(path, {"w": ((4,), np.float64)})
    np.testing.assert_array_equal(loaded["w"], np.arange(4.0))
    assert len(leftovers(tmp_path)) == 1  # the half-written temporary, under another name


def test_killed_first_checkpoint_write_leaves_no_target(tmp_path):
    path = str(tmp_path / "first.ckpt")
    kill_midway(
        f"""
        import numpy as np
        from graphjit.runtime import checkpoint
        checkpoint.save({path!r}, {{"w": np.ones(1000)}})
        """
    )
    assert not os.path.exists(path)
    with pytest.raises(gj.CheckpointError, match="no checkpoint"):
        checkpoint.load(path, {"w": ((1000,), np.float64)})


def test_session_restores_the_last_complete_save_after_a_killed_save(tmp_path):
    path = str(tmp_path / "session.ckpt")
    g = gj.Graph()
    with g.as_default():
        v = gj.Variable(np.zeros(3), name="v")
        bump = v.assign_add(1.0)
    with gj.Session(g) as sess:
        sess.run(bump)
        sess.save(path)  # v = 1
        kill_midway(
            f"""
            import numpy as np
            from graphjit.runtime import checkpoint
            checkpoint.save({path!r}, {{"v": np.full(3, 5.0)}})
            """
        )
        sess.run([bump, bump])
        sess.restore(path)
        np.testing.assert_array_equal(sess.run(v), [1.0, 1.0, 1.0])


def rewrite_checkpoint(path: str, change) -> None:
    """Rewrite a checkpoint as a valid zip with `change(arrays, meta)` applied, so that only
    graphjit's own checks (not zip's CRCs) can notice."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("__graphjit_meta__").item().decode())  # format 2: bytes
    change(arrays, meta)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, __graphjit_meta__=np.array(json.dumps(meta).encode()))
    open(path, "wb").write(buffer.getvalue())


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda arrays, meta: arrays["w"].__setitem__(0, 99.0),
            "fails its checksum for variable 'w'",
        ),
        (  # an array the metadata does not list: the file is not what save wrote
            lambda arrays, meta: arrays.update(extra=np.ones(2)),
            "member 'extra.npy' that its metadata does not list",
        ),
        (lambda arrays, meta: arrays.pop("w"), "lists a variable 'w' that it does not hold"),
        (lambda arrays, meta: meta.update(format_version=99), "format 99 is not supported"),
        (
            lambda arrays, meta: meta["variables"]["w"].pop("sha256"),
            "corrupt metadata: variable 'w' has sha256 None",
        ),
    ],
    ids=["changed-value", "added-array", "removed-array", "future-format", "no-checksum"],
)
def test_checkpoint_checksum_and_format_version_are_verified(tmp_path, change, message):
    path = str(tmp_path / "model.ckpt")
    checkpoint.save(path, {"w": np.arange(3.0)})
    assert checkpoint.load(path, {"w": ((3,), np.float64)})["w"][0] == 0.0
    rewrite_checkpoint(path, change)
    with pytest.raises(gj.CheckpointError, match=message):
        checkpoint.load(path, {"w": ((3,), np.float64)})


def test_checkpoint_with_unreadable_metadata(tmp_path):
    path = str(tmp_path / "model.ckpt")
    with zipfile.ZipFile(path, "w") as z:  # valid zip, metadata that is not JSON
        buffer = io.BytesIO()
        np.save(buffer, np.array("{not json"))
        z.writestr("__graphjit_meta__.npy", buffer.getvalue())
    with pytest.raises(gj.CheckpointError, match="corrupt metadata"):
        checkpoint.load(path, {})


# ---- the on-disk compile cache -------------------------------------------------------------


def test_killed_cache_write_leaves_the_previous_object(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHJIT_CACHE_DIR", str(tmp_path))
    key = "0" * 64
    cache.disk_store(key, b"the first object code")
    kill_midway(
        f"""
        from graphjit.codegen.llvm import cache
        cache.disk_store({key!r}, b"a second object code, never finished" * 1000)
        """,
        {"GRAPHJIT_CACHE_DIR": str(tmp_path)},
    )
    assert cache.disk_load(key) == b"the first object code"
    assert len(leftovers(tmp_path)) == 1


def cached_run(x_value: float):
    """A run compiled through the disk cache (the in-memory cache emptied first)."""
    cache.memory_clear()
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(np.float64, [3], name="x")
        out = gj.tanh(x) * 3.0 + gj.exp(-x)
    with gj.Session(g) as sess:
        return sess.run(out, {x: np.full(3, x_value)})


def object_files(directory) -> list[str]:
    return [os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".gjobj")]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-100] + bytes(b ^ 0xFF for b in data[-100:]),  # payload
        lambda data: b"graphjit-object-v0\n" + data[len(cache.FORMAT) :],  # old format tag
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: b"",  # empty
    ],
    ids=["flipped-payload", "other-format", "truncated", "empty"],
)
def test_damaged_cache_file_is_ignored_and_recompiled(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("GRAPHJIT_CACHE_DIR", str(tmp_path))
    expected = np.tanh(0.5) * 3.0 + np.exp(-0.5)
    np.testing.assert_allclose(cached_run(0.5), expected)
    (path,) = object_files(tmp_path)
    good = open(path, "rb").read()
    open(path, "wb").write(damage(good))
    with pytest.warns(UserWarning, match="damaged compile-cache file"):
        np.testing.assert_allclose(cached_run(0.5), expected)
    assert open(path, "rb").read() == good  # rewritten whole by the recompilation
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the repaired file loads without complaint
        np.testing.assert_allclose(cached_run(0.5), expected)
