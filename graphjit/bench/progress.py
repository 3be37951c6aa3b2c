"""The progress bar: tqdm when it is installed (the `bench` extra), else one plain line per
step on stderr. Either way it writes to stderr, so stdout keeps only the table."""

from __future__ import annotations

import sys


class Progress:
    """`start(label)` names the step now running; `advance()` marks it done."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.done, self.enabled = total, 0, enabled
        self._bar = self._make_bar() if enabled else None

    def _make_bar(self):
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=self.total, unit="run", file=sys.stderr, dynamic_ncols=True, leave=False)

    def start(self, label: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_description_str(label)
        else:
            print(f"[{self.done + 1}/{self.total}] {label}", file=sys.stderr, flush=True)

    def advance(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
