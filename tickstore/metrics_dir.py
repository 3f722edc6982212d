"""Feast's metrics folder, named after the process, so that one a killed process left is removed.

`import feast` makes a folder for prometheus_client's multiprocess files (`/tmp/feast_metrics_<random>`)
and removes it when Python exits; a process that is killed (SIGTERM's default, SIGKILL) leaves it,
with nothing telling whose it was. Given one named by PID namespace and process instead (Feast takes
a folder already set), the next tickstore command removes those of processes gone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tickstore import pids

PREFIX = "tickstore-feast-metrics-"
GONE_AFTER_S = 60.0  # a folder younger may be a process's of another namespace sharing /tmp, just made
MAX_PID = 2**22  # Linux's highest pid_max
VARIABLE = "PROMETHEUS_MULTIPROCESS_DIR"  # Feast's; it sets prometheus_client's PROMETHEUS_MULTIPROC_DIR


def claim() -> Path | None:
    """Give this process a metrics folder of its own before Feast is imported, removed at its exit,
    and remove the folders of this namespace's processes that are gone; None when Feast is imported
    already or the folder is the user's (the variable set)."""
    inherited = os.environ.get(VARIABLE)
    if "feast.metrics" in sys.modules or (inherited and not Path(inherited).name.startswith(PREFIX)):
        return None
    root = Path(tempfile.gettempdir())
    path = root / f"{PREFIX}{_namespace()}-{os.getpid()}"
    if inherited == str(path):  # claimed already (by the CLI, then by the plugin's package)
        return path
    remove_gone(root)
    try:
        path.mkdir(mode=0o700, exist_ok=True)
    except OSError:  # a temporary folder that can't be written: Feast's own mkdtemp says so
        return None
    if inherited and os.environ.get("PROMETHEUS_MULTIPROC_DIR") == inherited:
        # a tickstore parent's (the demo starts commands): its folder goes when it exits, and Feast
        # points prometheus_client at this one when the variable is unset
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.environ[VARIABLE] = str(path)
    atexit.register(_remove, path, os.getpid())
    return path


def remove_gone(root: Path) -> None:
    """Remove the metrics folders in ``root`` of this PID namespace's processes that are gone."""
    own = f"{PREFIX}{_namespace()}-"
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(own) :]
        # a number past any PID (os.kill refuses it) is no name this module gave
        if not entry.name.startswith(own) or not pid.isdigit() or int(pid) > MAX_PID or pids.alive(int(pid)):
            continue
        try:
            old = time.time() - entry.stat(follow_symlinks=False).st_mtime > GONE_AFTER_S
        except FileNotFoundError:  # removed meanwhile
            continue
        if old and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


def _remove(path: Path, pid: int) -> None:
    if os.getpid() == pid:  # not a forked child's (gunicorn's workers): the folder is its parent's
        shutil.rmtree(path, ignore_errors=True)


def _namespace() -> str:
    """This process's PID namespace, as a number: PIDs of other namespaces sharing /tmp mean others."""
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:  # not Linux: one namespace
        return "0"
    digits = "".join(ch for ch in link if ch.isdigit())
    return digits or "0"
