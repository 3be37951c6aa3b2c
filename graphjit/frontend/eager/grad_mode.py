"""Grad mode: whether eager ops record themselves on the tape (per thread, as in PyTorch).

`no_grad`, `enable_grad`, `set_grad_enabled` and `inference_mode` are context managers
that are also decorators; `set_grad_enabled(False)` called as a plain function switches at
once, as PyTorch's does.
"""

from __future__ import annotations

import contextlib
import functools
import threading

from graphjit.ir.ops import GRADIENT_SCOPE


class _GradMode(threading.local):
    enabled = True
    inference = False


_MODE = _GradMode()


def is_grad_enabled() -> bool:
    return _MODE.enabled


def is_inference_mode_enabled() -> bool:
    return _MODE.inference


class _GradModeSwitch:
    """A context manager that is also a decorator; it restores the previous mode on exit,
    so that switches nest (no_grad inside enable_grad inside no_grad ...)."""

    enabled: bool
    inference: bool | None = None  # None: leave inference mode as it is

    def __enter__(self):
        self._previous = (_MODE.enabled, _MODE.inference)
        self._switch()
        return self

    def __exit__(self, *exc_info) -> None:
        _MODE.enabled, _MODE.inference = self._previous

    def _switch(self) -> None:
        _MODE.enabled = self.enabled
        if self.inference is not None:
            _MODE.inference = self.inference

    def _fresh(self) -> _GradModeSwitch:
        return type(self)()

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            # A fresh switch per call: the decorated function may be re-entered.
            with self._fresh():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradModeSwitch):  # (PyTorch's spelling)
    """`with gj.no_grad():` or `@gj.no_grad()`: ops run without recording on the tape."""

    enabled = False


class enable_grad(_GradModeSwitch):  # (PyTorch's spelling)
    """`with gj.enable_grad():` or `@gj.enable_grad()`: recording back on (inside no_grad)."""

    enabled = True


class set_grad_enabled(_GradModeSwitch):  # (PyTorch's spelling)
    """`gj.set_grad_enabled(False)` switches recording off at once (a plain call);
    `with gj.set_grad_enabled(flag):` switches it for the block and restores the previous
    mode on exit; `@gj.set_grad_enabled(flag)` for every call of a function."""

    def __init__(self, mode: bool):
        self.enabled = bool(mode)
        # PyTorch switches in the constructor, so that the plain call works; the `with`
        # form then restores the mode from before the constructor ran.
        self._before_call = (_MODE.enabled, _MODE.inference)
        _MODE.enabled = self.enabled

    def __enter__(self):
        super().__enter__()
        self._previous = self._before_call
        return self

    def _fresh(self) -> _GradModeSwitch:
        return set_grad_enabled(self.enabled)

    def __call__(self, fn):
        # Decorating must not leave the mode switched (the constructor switched it).
        _MODE.enabled, _MODE.inference = self._before_call
        return super().__call__(fn)


class inference_mode(_GradModeSwitch):  # (PyTorch's spelling)
    """`with gj.inference_mode():`, `@gj.inference_mode()` or `@gj.inference_mode`: no
    op records on the tape and every tensor made inside has requires_grad False (PyTorch's
    inference mode, without its refusal to use such tensors in autograd later: here they are
    ordinary tensors that do not require grad). `inference_mode(False)` turns recording
    back on, as PyTorch's does."""

    def __new__(cls, mode=True):
        if callable(mode):  # bare `@gj.inference_mode`, as PyTorch allows
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)
        self.enabled = not self.mode
        self.inference = self.mode

    def _fresh(self) -> _GradModeSwitch:
        return inference_mode(self.mode)


@contextlib.contextmanager
def traced_grad_mode():
    """While a gj.function is traced: gradients on (a trace made under the caller's
    `no_grad` serves calls with gradients too), and the graph ops the function builds
    inside its own `gj.no_grad()` blocks stop gradients, as PyTorch's do."""
    scope = GRADIENT_SCOPE.stops
    GRADIENT_SCOPE.stops = _grad_disabled
    try:
        with enable_grad(), inference_mode(False):
            yield
    finally:
        GRADIENT_SCOPE.stops = scope


def _grad_disabled() -> bool:
    return not _MODE.enabled
