"""What `import graphjit` loads: not ml_dtypes (0.55 s to import at version 0.7) nor
scipy.special (0.17 s), which only bfloat16 and two reference kernels need; bfloat16 is
found all the same, however its arrays arrive (ir/types.py, _Bfloat16). Each check runs
in a fresh interpreter, where nothing has imported either yet."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphjit as gj


def _fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_loads_neither_ml_dtypes_nor_scipy_special():
    out = _fresh(
        """
        import sys
        import graphjit as gj
        print(sorted(m for m in ("ml_dtypes", "scipy.special") if m in sys.modules))
        print({gj.bfloat16: 1, gj.float32: 2}[gj.bfloat16], gj.bfloat16, gj.bfloat16.name)
        print(gj.bfloat16 == gj.float16, gj.bfloat16 == gj.bfloat16)
        print(sorted(m for m in ("ml_dtypes", "scipy.special") if m in sys.modules))
        """
    )
    assert out.split("\n")[:4] == ["[]", "1 gj.bfloat16 bfloat16", "False True", "[]"]


@pytest.mark.parametrize(
    "entry", ["eager", "as_dtype", "session-llvm", "session-interpreter", "constant", "function"]
)
def test_bfloat16_arrays_made_after_import_are_bfloat16(entry):
    """ml_dtypes imported by the user after graphjit: its arrays reach graphjit before
    anything asked for gj.bfloat16's NumPy type."""
    run = {
        "eager": "r = gj.tensor(a); print(r.dtype is gj.bfloat16, (r * 2).numpy().dtype)",
        "as_dtype": "from graphjit.ir.types import as_dtype\nprint(as_dtype(a.dtype) is gj.bfloat16, 'x')",
        **{
            f"session-{backend}": f"""
            g = gj.Graph()
            with g.as_default():
                x = gj.placeholder(a.dtype, (3,), name="x")
                y = x * 2
            r = gj.Session(g, backend="{backend}").run(y, {{x: a}})
            print(x.dtype is gj.bfloat16, r.dtype)
            """
            for backend in ("llvm", "interpreter")
        },
        "constant": """
            g = gj.Graph()
            with g.as_default():
                c = gj.constant(a)
                y = c * 2
            r = gj.Session(g).run(y)
            print(c.dtype is gj.bfloat16, r.dtype)
            """,
        "function": "r = gj.function(lambda x: x * 2)(a); print(r.tolist() == [3, -4, 6.5], r.dtype)",
    }[entry]
    made = """
        import graphjit as gj
        import ml_dtypes, numpy as np
        a = np.array([1.5, -2.0, 3.25], dtype=ml_dtypes.bfloat16)
        """
    out = _fresh(textwrap.dedent(made) + textwrap.dedent(run))
    assert out.split()[:2] in (["True", "bfloat16"], ["True", "x"])


def test_without_ml_dtypes_bfloat16_names_the_package():
    out = _fresh(
        """
        import sys
        sys.modules["ml_dtypes"] = None  # (not installed)
        import graphjit as gj
        print(gj.bfloat16)
        try:
            gj.zeros((2,), dtype=gj.bfloat16)
        except gj.DTypeError as e:
            print(type(e).__name__, "pip install ml_dtypes" in str(e))
        print(gj.zeros((2,), dtype=gj.float16).dtype)
        """
    )
    assert out.split("\n")[:3] == [
        "gj.bfloat16 (unavailable: needs ml_dtypes)",
        "DTypeError True",
        "gj.float16",
    ]


def test_bfloat16_is_one_object_and_pickles_as_it():
    pytest.importorskip("ml_dtypes")
    assert pickle.loads(pickle.dumps(gj.bfloat16)) is gj.bfloat16
    assert gj.bfloat16.np == np.dtype("bfloat16") and gj.bfloat16.is_floating
    assert hash(gj.bfloat16) == hash(gj.bfloat16) and gj.bfloat16 != gj.float16
