"""The hidden files a dataset is written to before it is renamed into place, and those a killed build left."""

from __future__ import annotations

import glob
import os
import re
import socket
from pathlib import Path

from tickstore import pids

_HOST = socket.gethostname()  # the machine whose process wrote a file, for a home on a shared disk


def path_for(path: Path, stage: str = "") -> Path:
    """Where this process writes ``path`` before renaming it over: hidden, beside it, its own.

    The process id keeps two builds of one file (two drift gates on one range) apart: with one name
    for both, the first renamed the other's half-written file and the second failed ("No such file").
    The host names the machine whose process it is, for a home on a shared disk.
    """
    return path.with_name(f".{path.name}.{stage + '.' if stage else ''}{os.getpid()}@{_HOST}.partial")


def remove_orphans(path: Path) -> None:
    """Remove the partial files of ``path`` left by a process of this machine that is gone (killed
    mid-build: a Ctrl-C or an error removes its own), so that no half-written set of gigabytes
    stays hidden beside it."""
    mine = re.compile(rf"\.{re.escape(path.name)}\.(?:[a-z-]+\.)?(\d+)@(.+)\.partial")
    for orphan in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        match = mine.fullmatch(orphan.name)
        if match and match[2] == _HOST and not pids.alive(int(match[1])):
            orphan.unlink(missing_ok=True)  # another build may have just removed it too
