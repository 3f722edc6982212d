"""Whether a process is still there, by its id: for files and servers a process leaves behind."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)  # signal 0: a check only
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    # a zombie child still answers kill(0)
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True
