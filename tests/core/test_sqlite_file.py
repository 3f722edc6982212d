"""A new SQLite file made in WAL mode by several processes (threads here) at once."""

from __future__ import annotations

from pathlib import Path

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
