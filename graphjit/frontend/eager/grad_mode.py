"""Grad mode: whether eager ops record themselves on the tape (per thread, as in PyTorch)."""

from __future__ import annotations

import functools
import threading


class _GradMode(threading.local):
    enabled = True


_MODE = _GradMode()


def is_grad_enabled() -> bool:
    return _MODE.enabled


def set_grad_enabled(enabled: bool) -> None:
    _MODE.enabled = bool(enabled)


class _GradModeSwitch:
    """A context manager that is also a decorator; it restores the previous mode on exit,
    so that switches nest (no_grad inside enable_grad inside no_grad ...)."""

    enabled: bool

    def __enter__(self):
        self._previous = _MODE.enabled
        _MODE.enabled = self.enabled
        return self

    def __exit__(self, *exc_info) -> None:
        _MODE.enabled = self._previous

    def __call__(self, fn):
        switch_type = type(self)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            # A fresh switch per call: the decorated function may be re-entered.
            with switch_type():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradModeSwitch):  # (PyTorch's spelling)
    """`with gj.no_grad():` or `@gj.no_grad()`: ops run without recording on the tape."""

    enabled = False


class enable_grad(_GradModeSwitch):  # (PyTorch's spelling)
    """`with gj.enable_grad():` or `@gj.enable_grad()`: recording back on (inside no_grad)."""

    enabled = True
