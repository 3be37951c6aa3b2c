"""Nothing on disk is trusted: a crafted checkpoint is refused before it costs more memory
than the graph's variables need (zip bombs, huge .npy shapes, unexpected or duplicated
members, an oversized metadata member, a FIFO); saves killed mid-write leave no
temporaries behind for long (the next save removes them); checkpoints respect the umask."""

from __future__ import annotations

import io
import json
import os
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from test_cache_trust import deadline
from test_files import kill_midway, leftovers

import graphjit as gj
from graphjit.runtime import checkpoint

MiB = 1 << 20
W = {"w": ((3,), np.float64)}  # what the graph expects in most tests


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(shape, dtype) -> bytes:
    """The first bytes of an .npy file for an array of `shape` and `dtype`."""
    buffer = io.BytesIO()
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": shape,
    }
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def meta(arrays: dict) -> bytes:
    text = json.dumps({"format_version": 1, "checksum": checkpoint._checksum(arrays)})
    return npy(np.array(text))


GOOD_META = meta({"w": np.arange(3.0)})


def craft(path, members) -> None:
    """A zip of (name, bytes, or a number of MiB of zeros after `bytes`) members, deflated."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data, zeros_mib in members:
            with z.open(name, "w", force_zip64=True) as member:
                member.write(data)
                chunk = bytes(MiB)
                for _ in range(zeros_mib):
                    member.write(chunk)


def refused_cheaply(path, expected, match: str) -> None:
    """load raises CheckpointError(match) at once, allocating under 2 MiB on the way."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(gj.CheckpointError, match=match):
            checkpoint.load(str(path), expected)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 2 * MiB, f"allocated {peak / MiB:.1f} MiB before refusing"


def test_a_member_inflating_far_past_its_variable_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.ckpt"
    craft(path, [("__graphjit_meta__.npy", GOOD_META, 0), ("w.npy", npy_header((3,), "<f8"), 128)])
    assert os.path.getsize(path) < MiB  # 128 MiB once inflated
    refused_cheaply(path, W, r"'w.npy' declares \d+ bytes, more than the \d+ it can need")


def test_a_huge_shape_in_the_npy_header_is_refused_without_allocating(tmp_path):
    path = tmp_path / "shape.ckpt"
    huge = (100_000, 100_000)  # 80 GB of float64, declared in a 200-byte member
    craft(
        path,
        [
            ("__graphjit_meta__.npy", GOOD_META, 0),
            ("w.npy", npy_header(huge, "<f8") + bytes(24), 0),
        ],
    )
    refused_cheaply(path, W, r"'w' in checkpoint .* is float64\(100000, 100000\)")


def test_a_header_that_disagrees_with_the_declared_size_is_refused(tmp_path):
    path = tmp_path / "short.ckpt"
    craft(path, [("__graphjit_meta__.npy", GOOD_META, 0), ("w.npy", npy_header((3,), "<f8"), 0)])
    refused_cheaply(path, W, r"'w.npy' declares \d+ bytes, its header \d+")


def test_an_unexpected_member_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "extra.ckpt"
    craft(
        path,
        [
            ("__graphjit_meta__.npy", GOOD_META, 0),
            ("w.npy", npy(np.arange(3.0)), 0),
            ("evil.npy", npy_header((16 * MiB,), "<f8"), 128),
        ],
    )
    refused_cheaply(path, W, "variable 'evil' that the graph does not have")


def test_an_oversized_metadata_member_is_refused(tmp_path):
    path = tmp_path / "meta.ckpt"
    craft(path, [("__graphjit_meta__.npy", GOOD_META, 64), ("w.npy", npy(np.arange(3.0)), 0)])
    refused_cheaply(path, W, "'__graphjit_meta__.npy' declares .* more than the 65536")


def test_duplicate_members_are_refused(tmp_path):
    path = tmp_path / "twice.ckpt"
    with pytest.warns(UserWarning, match="Duplicate name"):  # (zipfile's own)
        craft(
            path,
            [
                ("__graphjit_meta__.npy", GOOD_META, 0),
                ("w.npy", npy(np.arange(3.0)), 0),
                ("w.npy", npy(np.full(3, 9.0)), 0),
            ],
        )
    refused_cheaply(path, W, "two members of the same name")


def test_a_fifo_or_a_directory_is_not_a_checkpoint(tmp_path):
    fifo = tmp_path / "fifo.ckpt"
    os.mkfifo(fifo)
    with deadline(20):
        with pytest.raises(gj.CheckpointError, match="not a regular file"):
            checkpoint.load(str(fifo), W)
    with pytest.raises(gj.CheckpointError, match="not a regular file"):
        checkpoint.load(str(tmp_path), W)


def test_loaded_variables_keep_their_dtype_shape_and_layout_and_are_writable(tmp_path):
    arrays = {
        "f": np.asfortranarray(np.arange(6.0, dtype=np.float32).reshape(2, 3)),
        "scalar": np.array(7, np.int64),
        "empty": np.zeros((0, 4), np.int32),
        "mask": np.array([True, False]),
    }
    path = str(tmp_path / "kinds.ckpt")
    checkpoint.save(path, arrays)
    with zipfile.ZipFile(path) as z:
        assert z.namelist()[0] == "__graphjit_meta__.npy"  # the metadata first
    loaded = checkpoint.load(path, {k: (a.shape, a.dtype) for k, a in arrays.items()})
    for name, a in arrays.items():
        assert loaded[name].dtype == a.dtype and loaded[name].flags.writeable
        np.testing.assert_array_equal(loaded[name], a)
    assert loaded["f"].flags.f_contiguous


# ---- saving: temporaries and permissions -------------------------------------------------------


def test_the_next_save_removes_a_killed_saves_temporary(tmp_path):
    path = str(tmp_path / "model.ckpt")
    kill_midway(
        f"""
        import numpy as np
        from graphjit.runtime import checkpoint
        checkpoint.save({path!r}, {{"w": np.ones(1000)}})
        """
    )
    (left,) = leftovers(tmp_path)
    assert left.startswith(checkpoint.TMP_PREFIX)
    checkpoint.save(path, {"w": np.arange(3.0)})
    assert leftovers(tmp_path) == []
    np.testing.assert_array_equal(checkpoint.load(path, W)["w"], np.arange(3.0))


def test_stale_temporaries_go_and_live_or_foreign_ones_stay(tmp_path):
    host = checkpoint._HOST
    names = {
        "dead writer": f"{checkpoint.TMP_PREFIX}{host}-4000000-0a1b{checkpoint.TMP_SUFFIX}",
        "old, mkstemp's": ".tmp-ab12cd34.gjckpt",
        "live writer": f"{checkpoint.TMP_PREFIX}{host}-{os.getppid()}-0a1b{checkpoint.TMP_SUFFIX}",
        "other host": f"{checkpoint.TMP_PREFIX}00000000-4000000-0a1b{checkpoint.TMP_SUFFIX}",
        "not ours": ".tmp-somebody-elses.part",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / names["old, mkstemp's"], (two_hours_ago, two_hours_ago))
    checkpoint.save(str(tmp_path / "model.ckpt"), {"w": np.arange(3.0)})
    left = set(os.listdir(tmp_path))
    assert left == {"model.ckpt", names["live writer"], names["other host"], names["not ours"]}


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_a_checkpoint_respects_the_umask(tmp_path, umask):
    path = tmp_path / "model.ckpt"
    previous = os.umask(umask)
    try:
        checkpoint.save(str(path), {"w": np.arange(3.0)})
    finally:
        os.umask(previous)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
