"""A new SQLite file made in WAL mode, whole, when several processes make it at once."""

from __future__ import annotations

import glob
import os
import sqlite3
import threading
import time
from pathlib import Path

from tickstore import pids

# a file made aside lives for milliseconds: one older than this, of a process that is gone, was left
LEFT_ASIDE_AFTER_S = 60.0


def make_in_wal_mode(path: Path) -> None:
    """Make a new SQLite database at ``path`` in WAL mode (a persistent property of the file); a no-op
    where a file is there already.

    WAL lets readers and the one writer go on without blocking each other. The file is made aside and
    linked into place, so processes making it together never switch one file at once: switched in
    place, two that both found it missing could each hold a read lock while asking to write, and
    SQLite failed one of them at once ("database is locked", no busy wait) to end the deadlock. A file
    that is there is never opened here: this is another SQLite library than DuckDB's, and closing its
    file handle would drop the POSIX locks DuckDB's SQLite holds on the same file in this process.
    """
    if path.exists():
        _remove_left_aside(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    made = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    try:
        db = sqlite3.connect(made)
        try:
            db.execute("PRAGMA journal_mode=WAL")
        finally:
            db.close()
        try:  # a hard link never replaces a file: the first one made stays, the others use it
            os.link(made, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: switched in place
            _switch_in_place(path)
    finally:
        made.unlink(missing_ok=True)
    _remove_left_aside(path)


def _remove_left_aside(path: Path) -> None:
    """Remove what a process killed while making ``path`` left aside (its file, or SQLite's beside it).

    Only a gone process's, and only once old: a process of another PID namespace sharing the folder
    may be making one right now under a number that is free here.
    """
    prefix = f".{path.name}."
    for left in path.parent.glob(f"{glob.escape(prefix)}*.new*"):
        pid = left.name[len(prefix) :].split(".", 1)[0]
        try:
            old = time.time() - left.stat().st_mtime > LEFT_ASIDE_AFTER_S
        except FileNotFoundError:  # its own process removed it meanwhile
            continue
        if pid.isdigit() and old and not pids.alive(int(pid)):
            left.unlink(missing_ok=True)


def _switch_in_place(path: Path) -> None:
    db = sqlite3.connect(path, timeout=10)
    try:
        if db.execute("PRAGMA journal_mode").fetchone() != ("wal",):
            db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
