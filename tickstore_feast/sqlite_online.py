"""The SQLite online store as tickstore runs it: WAL mode, and a table for every registered view."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from feast import FeatureStore

from tickstore import paths, sqlite_file
from tickstore.errors import TickstoreError


class OnlineStoreDamaged(TickstoreError):
    """The SQLite online store's file is no database SQLite can read."""


def open_file(store: FeatureStore) -> set[str]:
    """Make ``store``'s SQLite online store file ready (WAL mode, persistent: the scorer reads while
    the stream writes, and in the default rollback journal a read waits for every write's commit);
    returns its tables. Called before Feast's apply touches the file: a file that is no database
    ended the stream, the scorer and `status` in a traceback."""
    path = Path(store.config.online_store.path).resolve()  # Feast's is relative to feature_repo/
    try:
        # made whole where missing: switched in place, the stream and the scorer starting together on
        # a new home could deadlock on the switch, one failing at once with "database is locked"
        sqlite_file.make_in_wal_mode(path)
        with closing(sqlite3.connect(path)) as con:
            if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # made by Feast itself
                con.execute("PRAGMA journal_mode=WAL")
            return {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError):  # locked, a full disk: said where they are met
            raise
        raise OnlineStoreDamaged(  # cut short or overwritten
            f"the online store {path} is damaged ({exc}): remove it with its -wal and -shm files "
            f"(rm {path}*), and `tickstore stream` or `tickstore feast materialize` fills it again "
            "(it holds only features computed from the lake)"
        ) from exc


def prepare(store: FeatureStore) -> None:
    """Get ``store``'s SQLite online store ready to read and write (`open_file`), with a table for each
    registered view where it is missing.

    A removed online store file (the way to empty it) left Feast's registry recording tables that
    were gone, so `feast apply` changed nothing, `tickstore status` and the scorer said "no such
    table", and `feast materialize` ended in a traceback. The file is a cache of the lake's features:
    made again empty, the stream or a `materialize` fills it.
    """
    tables = open_file(store)
    views = [v for v in store.list_feature_views() if v.online]
    if any(f"{store.project}_{v.name}" not in tables for v in views):
        # CREATE TABLE IF NOT EXISTS for each, as Feast's apply makes them
        store._get_provider().online_store.update(store.config, [], views, [], store.list_entities(), True)


def file_identity(store: FeatureStore) -> tuple[int, int] | None:
    """(device, inode) of ``store``'s SQLite online store file: another one after the file was removed
    and made again. None where there is no file (removed), or the store is not SQLite."""
    if getattr(store.config.online_store, "type", "sqlite") != "sqlite":
        return None
    return paths.file_identity(Path(store.config.online_store.path))


def reopen(store: FeatureStore) -> None:
    """Point ``store`` at the online store file at its path now, made (with its tables) if missing.

    Feast's SQLite store keeps one connection: after the file was removed (the way to empty it),
    a running stream went on writing into the removed file, which nobody could read.
    """
    online = store._get_provider().online_store
    conn = getattr(online, "_conn", None)
    if conn is not None:
        conn.close()
        online._conn = None  # type: ignore[attr-defined]
    prepare(store)


class FileFollower:
    """Notices ``store``'s SQLite online store file removed or replaced under a long-running process."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.identity = file_identity(store)  # None: not SQLite, nothing to follow

    def reopened(self) -> bool:
        """Whether the file at the path is another than the one opened; if so, ``store`` is moved to
        it (made, with its tables, if missing)."""
        if self.identity is None or file_identity(self.store) == self.identity:
            return False
        reopen(self.store)
        self.identity = file_identity(self.store)
        return True
