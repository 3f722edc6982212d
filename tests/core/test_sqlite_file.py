"""A new SQLite file made in WAL mode by several processes (threads here) at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.threads import at_once
from tickstore import sqlite_file


def test_many_making_a_new_file_together_all_find_it_in_wal_mode(tmp_path: Path) -> None:
    # Switched to WAL in place, two that both found the file missing could each hold a read lock while
    # asking to write; SQLite failed one at once ("database is locked") to end the deadlock: 13 of 500
    # rounds of eight here, and a CI run lost one of the eight processes opening a new lake together
    # (tests/core/test_core.py).
    for round_ in range(1000):
        path = tmp_path / str(round_) / "catalog.sqlite"
        assert at_once(lambda path=path: sqlite_file.make_in_wal_mode(path)) == [], f"round {round_}"
        assert path.read_bytes()[18:20] == b"\x02\x02"  # SQLite's header: WAL for reading and writing
        assert not list(path.parent.glob(".*.new"))  # nothing made aside is left


def test_a_file_that_is_there_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "kept.sqlite"
    path.write_bytes(b"not a database, and not ours to touch")
    sqlite_file.make_in_wal_mode(path)
    assert path.read_bytes() == b"not a database, and not ours to touch"


def _left_aside(path: Path, pid: int, age_s: float, suffix: str = "") -> Path:
    left = path.with_name(f".{path.name}.{pid}.140001.new{suffix}")
    left.write_bytes(b"")
    os.utime(left, (time.time() - age_s, time.time() - age_s))
    return left


def _gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("there", [False, True], ids=["made now", "already there"])
def test_what_a_killed_maker_left_aside_is_removed_once_it_is_old(tmp_path: Path, there: bool) -> None:
    # A process killed between making its aside file and removing it left a 4 KB dotted file beside
    # the catalog for good.
    path = tmp_path / "catalog.sqlite"
    if there:
        sqlite_file.make_in_wal_mode(path)
    gone = _gone_pid()
    removed = [_left_aside(path, gone, 3600), _left_aside(path, gone, 3600, "-wal")]
    kept = [
        _left_aside(path, os.getpid(), 3600, "-shm"),  # its process is alive: it may be making it now
        _left_aside(path.with_name("other.sqlite"), gone, 3600),  # another file's
    ]
    young = _left_aside(path, gone, 0, "-journal")  # perhaps a process another PID namespace sees
    sqlite_file.make_in_wal_mode(path)
    assert [p.exists() for p in removed] == [False, False]
    assert [p.exists() for p in kept] == [True, True]
    assert young.exists()
