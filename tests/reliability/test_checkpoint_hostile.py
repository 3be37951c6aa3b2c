"""Nothing on disk is trusted: a crafted checkpoint is refused before it costs more memory
than the graph's variables need (zip bombs, huge .npy shapes, unlisted or duplicated
members, an oversized or malformed metadata member, a FIFO); a checkpoint with more
variables than the graph (a training graph's, restored into an inference graph) restores
without its extra members being read, however large they claim to be; format 1 files still
restore; saves killed mid-write leave no temporaries behind for long (the next save removes
them); checkpoints respect the umask."""

from __future__ import annotations

import hashlib
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


def v1_checksum(arrays: dict) -> str:
    """Format 1's checksum: one SHA-256 over every array's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return digest.hexdigest()


def meta_v1(arrays: dict) -> bytes:
    """Format 1's metadata member, as its save wrote it: a JSON str array."""
    return npy(np.array(json.dumps({"format_version": 1, "checksum": v1_checksum(arrays)})))


def saved_v1(arrays: dict, checksummed: dict | None = None) -> bytes:
    """A whole file as format 1's save wrote it (np.savez, the metadata first), its
    checksum that of `checksummed` (default: `arrays`)."""
    meta = {"format_version": 1, "checksum": v1_checksum(checksummed or arrays)}
    buffer = io.BytesIO()
    np.savez(buffer, __graphjit_meta__=np.array(json.dumps(meta)), **arrays)
    return buffer.getvalue()


def entry(array) -> dict:
    """Format 2's metadata entry of a C-ordered array."""
    array = np.asarray(array)
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    return {"dtype": array.dtype.str, "shape": list(array.shape), "sha256": digest}


def meta_v2(arrays: dict, **listed) -> bytes:
    """Format 2's metadata for `arrays`, listing also `listed` (name: entry) variables."""
    variables = {name: entry(a) for name, a in arrays.items()} | listed
    return npy(np.array(json.dumps({"format_version": 2, "variables": variables}).encode()))


GOOD_META = {1: meta_v1({"w": np.arange(3.0)}), 2: meta_v2({"w": np.arange(3.0)})}
BOMB = {"dtype": "<f8", "shape": [16 * MiB], "sha256": "0" * 64}  # 128 MiB of float64


@pytest.fixture(params=[1, 2], ids=["format1", "format2"])
def version(request):
    return request.param


def craft(path, members) -> None:
    """A zip of (name, bytes, or a number of MiB of zeros after `bytes`) members, deflated."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data, zeros_mib in members:
            with z.open(name, "w", force_zip64=True) as member:
                member.write(data)
                chunk = bytes(MiB)
                for _ in range(zeros_mib):
                    member.write(chunk)


def cheaply(load):
    """Run `load()` and return its result, checking it took under 2 s and allocated under
    2 MiB (the variables in these tests are a few bytes)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 2 * MiB, f"allocated {peak / MiB:.1f} MiB"
    return result


def refused_cheaply(path, expected, match: str) -> None:
    """load raises CheckpointError(match) at once, allocating under 2 MiB on the way."""

    def load():
        with pytest.raises(gj.CheckpointError, match=match):
            checkpoint.load(str(path), expected)

    cheaply(load)


def test_a_member_inflating_far_past_its_variable_is_refused_before_inflating(tmp_path, version):
    path = tmp_path / "bomb.ckpt"
    craft(
        path,
        [("__graphjit_meta__.npy", GOOD_META[version], 0), ("w.npy", npy_header((3,), "<f8"), 128)],
    )
    assert os.path.getsize(path) < MiB  # 128 MiB once inflated
    refused_cheaply(path, W, r"'w.npy' declares \d+ bytes, more than the \d+ it can need")


def test_a_huge_shape_in_the_npy_header_is_refused_without_allocating(tmp_path, version):
    path = tmp_path / "shape.ckpt"
    huge = (100_000, 100_000)  # 80 GB of float64, declared in a 200-byte member
    craft(
        path,
        [
            ("__graphjit_meta__.npy", GOOD_META[version], 0),
            ("w.npy", npy_header(huge, "<f8") + bytes(24), 0),
        ],
    )
    refused_cheaply(path, W, r"'w' in checkpoint .* is float64\(100000, 100000\)")


def test_a_header_that_disagrees_with_the_declared_size_is_refused(tmp_path, version):
    path = tmp_path / "short.ckpt"
    craft(
        path,
        [("__graphjit_meta__.npy", GOOD_META[version], 0), ("w.npy", npy_header((3,), "<f8"), 0)],
    )
    refused_cheaply(path, W, r"'w.npy' declares \d+ bytes, its header \d+")


def test_a_format1_member_the_graph_does_not_have_is_refused_before_it_is_read(tmp_path):
    """Format 1 has one checksum over every array: an extra member cannot be verified
    without reading it, so such a file restores only into a graph with its variables."""
    path = tmp_path / "extra.ckpt"
    craft(
        path,
        [
            ("__graphjit_meta__.npy", GOOD_META[1], 0),
            ("w.npy", npy(np.arange(3.0)), 0),
            ("evil.npy", npy_header((16 * MiB,), "<f8"), 128),
        ],
    )
    refused_cheaply(path, W, "variable 'evil' that the graph does not have")


def test_a_member_the_metadata_does_not_list_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "extra.ckpt"
    craft(
        path,
        [
            ("__graphjit_meta__.npy", GOOD_META[2], 0),
            ("w.npy", npy(np.arange(3.0)), 0),
            ("evil.npy", npy_header((16 * MiB,), "<f8"), 128),
        ],
    )
    refused_cheaply(path, W, "member 'evil.npy' that its metadata does not list")


def test_a_listed_member_the_graph_does_not_have_is_never_inflated(tmp_path):
    """A training checkpoint restored into an inference graph: the extra member (here a
    128 MiB bomb, listed in the metadata) is not read, and restore succeeds."""
    path = tmp_path / "training.ckpt"
    craft(
        path,
        [
            ("__graphjit_meta__.npy", meta_v2({"w": np.arange(3.0)}, **{"w/m": BOMB}), 0),
            ("w.npy", npy(np.arange(3.0)), 0),
            ("w/m.npy", npy_header((16 * MiB,), "<f8"), 128),
        ],
    )
    assert os.path.getsize(path) < MiB  # 128 MiB once inflated
    loaded = cheaply(lambda: checkpoint.load(str(path), W))
    assert list(loaded) == ["w"]
    np.testing.assert_array_equal(loaded["w"], np.arange(3.0))
    g = gj.Graph()
    with g.as_default():
        w = gj.Variable(np.zeros(3), name="w")
    with gj.Session(g) as sess:
        sess.restore(str(path))
        np.testing.assert_array_equal(sess.run(w), np.arange(3.0))
    with pytest.raises(gj.CheckpointError, match="fails its checksum for variable 'w/m'"):
        checkpoint.load(str(path), {**W, "w/m": ((16 * MiB,), np.float64)})  # (reads it)


def test_an_oversized_metadata_member_is_refused(tmp_path, version):
    path = tmp_path / "meta.ckpt"
    craft(
        path, [("__graphjit_meta__.npy", GOOD_META[version], 64), ("w.npy", npy(np.arange(3.0)), 0)]
    )
    refused_cheaply(path, W, r"'__graphjit_meta__.npy' declares \d+ bytes, more than the \d+")


def test_duplicate_members_are_refused(tmp_path, version):
    path = tmp_path / "twice.ckpt"
    with pytest.warns(UserWarning, match="Duplicate name"):  # (zipfile's own)
        craft(
            path,
            [
                ("__graphjit_meta__.npy", GOOD_META[version], 0),
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


# ---- format 2: a checksum per variable; subsets of the variables -------------------------


def training_and_inference_graphs():
    """The same model twice: with Adam's update (slots w/m, w/v, w/step and the same for b)
    and without (only w and b)."""
    rng = np.random.default_rng(5)
    xv, yv = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    graphs = {}
    for kind in ("training", "inference"):
        g = gj.Graph()
        with g.as_default():
            x = gj.placeholder(gj.float64, [None, 3], name="x")
            y = gj.placeholder(gj.float64, [None, 1], name="y")
            w = gj.Variable(np.full((3, 1), 0.5), name="w")
            b = gj.Variable(np.zeros(1), name="b")
            prediction = gj.matmul(x, w) + b
            loss = gj.mean(gj.square(prediction - y))
            step = gj.train.Adam(0.05).minimize(loss) if kind == "training" else None
        graphs[kind] = (g, {x: xv, y: yv}, prediction, step, (w, b))
    return graphs


def test_a_training_checkpoint_restores_into_an_inference_graph(tmp_path):
    graphs = training_and_inference_graphs()
    g, feed, prediction, step, (w, b) = graphs["training"]
    assert {"w/m", "w/v", "w/step", "b/m"} <= set(g.variables)  # the extra variables
    path = str(tmp_path / "model.ckpt")
    with gj.Session(g) as sess:
        for _ in range(5):
            sess.run(step, feed)
        trained_w, trained_b, trained_prediction = sess.run([w, b, prediction], feed)
        sess.save(path)
    g, feed, prediction, _, (w, b) = graphs["inference"]
    assert set(g.variables) == {"w", "b"}
    with gj.Session(g) as sess:
        sess.restore(path)
        np.testing.assert_array_equal(sess.run(w), trained_w)
        np.testing.assert_array_equal(sess.run(b), trained_b)
        np.testing.assert_array_equal(sess.run(prediction, feed), trained_prediction)
    g, feed, prediction, step, (w, b) = graphs["training"]  # and back into a training graph
    with gj.Session(g) as sess:
        sess.restore(path)
        assert sess.run(g.variables["w/step"]) == 5.0
        np.testing.assert_array_equal(sess.run(w), trained_w)


def test_a_tampered_expected_member_fails_its_checksum(tmp_path):
    path = tmp_path / "tampered.ckpt"
    craft(
        path,
        [
            ("__graphjit_meta__.npy", GOOD_META[2], 0),
            ("w.npy", npy(np.array([0.0, 1.0, 2.5])), 0),  # one value changed
        ],
    )
    refused_cheaply(path, W, "fails its checksum for variable 'w': it is corrupt")


def test_every_variable_of_a_saved_checkpoint_is_checked_alone(tmp_path):
    path = str(tmp_path / "model.ckpt")
    arrays = {"a": np.arange(4.0), "b": np.asfortranarray(np.ones((2, 3), np.float32))}
    checkpoint.save(path, arrays)
    with zipfile.ZipFile(path) as z:
        meta = json.loads(np.load(z.open("__graphjit_meta__.npy")).item().decode())
    assert meta["format_version"] == 2
    assert meta["variables"]["a"] == entry(arrays["a"])
    assert meta["variables"]["b"]["shape"] == [2, 3]  # (its sha256: the Fortran-order bytes)
    only_b = checkpoint.load(path, {"b": ((2, 3), np.float32)})
    np.testing.assert_array_equal(only_b["b"], arrays["b"])


def with_meta(tmp_path, text) -> str:
    """A checkpoint holding a good w.npy and `text` (str: JSON, as format 2's bytes) as its
    metadata, or `text` as the metadata member's whole bytes."""
    path = tmp_path / "meta.ckpt"
    data = text if isinstance(text, bytes) else npy(np.array(text.encode()))
    craft(path, [("__graphjit_meta__.npy", data, 0), ("w.npy", npy(np.arange(3.0)), 0)])
    return path


def v2(**w) -> str:
    return json.dumps({"format_version": 2, "variables": {"w": entry(np.arange(3.0)) | w}})


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2]", "corrupt metadata: list, not an object"),
        ('"a string"', "corrupt metadata: str, not an object"),
        ("{not json", "corrupt metadata"),
        ("[" * 100_000 + "]" * 100_000, "corrupt metadata"),  # deeper than the parser goes
        ('{"format_version": ' + "9" * 5000 + "}", "corrupt metadata"),  # too many digits
        ('{"format_version": 1e999}', "format inf is not supported"),
        ('{"format_version": ' + "9" * 100 + "}", "format a huge number is not supported"),
        ('{"format_version": "2"}', "format '2' is not supported"),
        ('{"format_version": true}', "format True is not supported"),
        ('{"format_version": 2}', "corrupt metadata: it has no 'variables' object"),
        ('{"format_version": 2, "variables": [1]}', "no 'variables' object"),
        ('{"format_version": 2, "variables": {"w": 7}}', "variable 'w' is 7"),
        (v2(dtype=8), "variable 'w' has dtype 8"),
        (v2(dtype="<f8" * 100), "variable 'w' has dtype '<f8<f8"),
        (v2(dtype=None), "variable 'w' has dtype None"),
        (v2(shape=[-3]), r"variable 'w' has shape \[-3\]"),
        (v2(shape=[3.0]), r"variable 'w' has shape \[3.0\]"),
        (v2(shape=[True]), r"variable 'w' has shape \[True\]"),
        (v2(shape=[1 << 64]), "variable 'w' has shape"),
        (v2(shape=[10**1000]), "variable 'w' has shape"),
        (v2(shape=[1] * 65), "variable 'w' has shape"),
        (v2(shape=3), "variable 'w' has shape 3"),
        (v2(shape=[1 << 62]), r"'w' in checkpoint .* is float64\(4611686018427387904,\)"),
        (v2(dtype="<f4"), r"'w' in checkpoint .* is float32\(3,\), the graph's is float64"),
        (v2(dtype="|O"), r"'w' in checkpoint .* is object\(3,\)"),
        (v2(sha256="00"), "variable 'w' has sha256 '00'"),
        (v2(sha256=["0" * 64]), "variable 'w' has sha256"),
    ],
)
def test_malformed_metadata_is_a_checkpoint_error(tmp_path, text, message):
    refused_cheaply(with_meta(tmp_path, text), W, message)


@pytest.mark.parametrize(
    "data, message",
    [
        (npy_header((MiB * MiB,), "<f8"), r"a float64\(1099511627776,\) array, not a string"),
        (npy_header((), "<U100000"), r"declares \d+ bytes, its header 400128"),
        (npy_header((), f"|S{2 << 20}"), "2097152 bytes, more than the 1048576"),
        (npy_header((), "|S0"), "corrupt metadata"),
        (npy(np.array(b"\xff\xfe")), "corrupt metadata"),  # not UTF-8
        (npy(np.array([1, 2, 3])), "not a string"),
        (b"not an npy file at all", "corrupt"),
    ],
    ids=["huge-shape", "short", "too-long", "empty", "not-utf8", "numbers", "garbage"],
)
def test_a_malformed_metadata_member_is_refused_without_allocating(tmp_path, data, message):
    refused_cheaply(with_meta(tmp_path, data), W, message)


def test_a_missing_expected_variable_is_named(tmp_path):
    path = with_meta(tmp_path, v2())
    refused_cheaply(path, {**W, "b": ((2,), np.float64)}, "has no variable 'b'")


def test_a_format1_checkpoint_still_restores_into_its_graph(tmp_path):
    """A file as format 1's save wrote it restores, and its checksum is still verified."""
    arrays = {"v": np.arange(3, dtype=np.float32), "step": np.array(4, np.int64)}
    path = tmp_path / "old.ckpt"
    path.write_bytes(saved_v1(arrays))
    g = gj.Graph()
    with g.as_default():
        v = gj.Variable(np.zeros(3, np.float32), name="v")
        step = gj.Variable(np.array(0, np.int64), name="step")
    with gj.Session(g) as sess:
        sess.restore(str(path))
        np.testing.assert_array_equal(sess.run(v), arrays["v"])
        assert sess.run(step) == 4
        sess.save(str(path))  # and is written back as format 2
    with zipfile.ZipFile(path) as z:
        assert b'"format_version": 2' in np.load(z.open("__graphjit_meta__.npy")).item()
    path.write_bytes(saved_v1({**arrays, "v": np.full(3, 9.0, np.float32)}, arrays))
    with gj.Session(g) as sess:
        with pytest.raises(gj.CheckpointError, match="fails its checksum: it is corrupt"):
            sess.restore(str(path))
        np.testing.assert_array_equal(sess.run(v), np.zeros(3))  # nothing was restored


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
