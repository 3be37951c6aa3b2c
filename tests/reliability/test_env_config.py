"""graphjit's environment variables (graphjit/config.py): a value that cannot be used is a
gj.ConfigError naming the variable and what it takes, raised when the value is needed,
never at import; GRAPHJIT_CACHE_DIR that cannot be used is a warning, and compiles go on
without a disk cache."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from test_cache_trust import EXPECTED
from test_files import REPO, cached_run

import graphjit as gj
from graphjit import config
from graphjit.codegen.llvm import cache, compile_worker

BAD_VALUES = {
    "GRAPHJIT_JIT_CACHE_SIZE": ["-1", "abc", "2.5"],
    "GRAPHJIT_MAX_TENSOR_BYTES": ["abc", "0", "-5", "1e9"],
    "GRAPHJIT_COMPILE_TIMEOUT": ["abc", "0", "-1", "inf", "nan"],
    "GRAPHJIT_HELD_BUFFER_BYTES": ["-1", "abc", "2.5"],
    "GRAPHJIT_COMPILE_WORKER": ["maybe", "2", "off"],
    "GRAPHJIT_DUMP_LLVM": ["yes"],
    "GRAPHJIT_DUMP_ASM": ["-1"],
    "GRAPHJIT_DEBUG": ["on"],
    "GRAPHJIT_PRINT_IR": ["2"],
}
CASES = [(name, value) for name, values in BAD_VALUES.items() for value in values]


def llvm_run():
    """A fresh compile (in-memory cache emptied) and run on the llvm backend."""
    cache.memory_clear()
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(np.float64, [3], name="x")
        out = gj.exp(x) * 2.0
    with gj.Session(g) as sess:
        return sess.run(out, {x: np.zeros(3)})


@pytest.fixture
def clean_env(monkeypatch):
    for name in [*BAD_VALUES, "GRAPHJIT_CACHE_DIR", "GRAPHJIT_BLAS"]:
        monkeypatch.delenv(name, raising=False)
    cache.memory_clear()
    yield monkeypatch
    cache.memory_clear()


@pytest.mark.parametrize("name, value", CASES, ids=[f"{n}={v}" for n, v in CASES])
def test_a_bad_value_fails_the_compile_with_a_config_error_naming_it(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(gj.ConfigError, match=f"{name}='{value}' is not valid: it takes") as e:
        llvm_run()
    assert isinstance(e.value, gj.GraphjitError) and isinstance(e.value, ValueError)
    clean_env.delenv(name)
    np.testing.assert_allclose(llvm_run(), 2.0)  # read again: fixed, it works


def test_blas_takes_auto_numpy_or_scipy(clean_env):
    for value, expected in [("", "auto"), ("AUTO", "auto"), ("NumPy", "numpy"), ("scipy", "scipy")]:
        clean_env.setenv("GRAPHJIT_BLAS", value)
        assert config.blas() == expected
    clean_env.setenv("GRAPHJIT_BLAS", "openblas")
    with pytest.raises(gj.ConfigError, match="GRAPHJIT_BLAS='openblas'.*\"scipy\""):
        config.blas()


@pytest.mark.parametrize(
    "value, on", [("", False), ("0", False), ("1", True), (" TRUE ", True), ("False", False)]
)
def test_switches_take_0_1_true_false_in_any_case(clean_env, value, on):
    clean_env.setenv("GRAPHJIT_DEBUG", value)
    assert config.debug() is on
    clean_env.setenv("GRAPHJIT_COMPILE_WORKER", value)
    assert compile_worker.enabled() is (on or value == "")  # (on unless switched off)


def test_numbers_are_parsed_and_defaulted(clean_env):
    assert config.jit_cache_size() == config.JIT_CACHE_SIZE_DEFAULT
    assert config.max_tensor_bytes() is None
    assert config.compile_timeout() == config.COMPILE_TIMEOUT_DEFAULT
    clean_env.setenv("GRAPHJIT_JIT_CACHE_SIZE", " 0 ")
    clean_env.setenv("GRAPHJIT_MAX_TENSOR_BYTES", "4096")
    clean_env.setenv("GRAPHJIT_COMPILE_TIMEOUT", "2.5")
    assert config.jit_cache_size() == 0
    assert config.max_tensor_bytes() == 4096
    assert config.compile_timeout() == 2.5


def test_max_tensor_bytes_from_the_environment_limits_tensors(clean_env):
    clean_env.setenv("GRAPHJIT_MAX_TENSOR_BYTES", "16")  # two float64s
    with pytest.raises(gj.ResourceError, match="more than the 16 bytes"):
        llvm_run()


def test_bad_values_do_not_break_import():
    env = {**os.environ, "PYTHONPATH": REPO}
    env.update({name: values[0] for name, values in BAD_VALUES.items()})
    env.update(GRAPHJIT_CACHE_DIR="/dev/null", GRAPHJIT_BLAS="openblas")
    done = subprocess.run(
        [sys.executable, "-c", "import graphjit; print('imported')"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.split() == ["imported"], done.stderr[-2000:]


# ---- GRAPHJIT_CACHE_DIR: a warning, and no disk cache --------------------------------------------


@pytest.mark.parametrize("where", ["a file", "below a file", "unwritable"])
def test_an_unusable_cache_dir_is_a_warning_and_compiles_go_on(clean_env, tmp_path, where):
    a_file = tmp_path / "a-file"
    a_file.write_bytes(b"not a directory")
    path = {
        "a file": a_file,
        "below a file": a_file / "cache",
        "unwritable": "/proc/graphjit-cache",  # (even root cannot create it)
    }[where]
    clean_env.setenv("GRAPHJIT_CACHE_DIR", str(path))
    with pytest.warns(cache.CacheWarning, match="not using GRAPHJIT_CACHE_DIR=.*cannot be created"):
        np.testing.assert_allclose(cached_run(0.5), EXPECTED)
    assert a_file.read_bytes() == b"not a directory"


def test_an_empty_cache_dir_means_none(clean_env, tmp_path):
    clean_env.setenv("GRAPHJIT_CACHE_DIR", "")
    assert config.cache_dir() is None and cache.disk_dir() is None
    clean_env.chdir(tmp_path)
    clean_env.setenv("GRAPHJIT_CACHE_DIR", "relative")
    assert config.cache_dir() == str(tmp_path / "relative")
