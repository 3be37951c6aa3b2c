"""Small helpers for the files graphjit writes beside the user's (the compile cache's
entries, checkpoint temporaries)."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether process `pid` (on this host) may still be running: a temporary file whose
    writer is gone may be removed, any other left alone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or a pid we cannot ask about): leave it
    return True
