"""A new SQLite file made in WAL mode, whole, when several processes make it at once."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path


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


def _switch_in_place(path: Path) -> None:
    db = sqlite3.connect(path, timeout=10)
    try:
        if db.execute("PRAGMA journal_mode").fetchone() != ("wal",):
            db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
