"""The SQLite online store as tickstore runs it: WAL mode, and a table for every registered view."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from feast import FeatureStore


def prepare(store: FeatureStore) -> None:
    """Get ``store``'s SQLite online store ready to read and write.

    WAL mode (persistent): the scorer reads while the stream writes, and in the default rollback
    journal a read waits for every write's commit. And a table for each registered view where it is
    missing: a removed online store file (the way to empty it) left Feast's registry recording
    tables that were gone, so `feast apply` changed nothing, `tickstore status` and the scorer said
    "no such table", and `feast materialize` ended in a traceback. The file is a cache of the
    lake's features: made again empty, the stream or a `materialize` fills it.
    """
    path = Path(store.config.online_store.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            con.execute("PRAGMA journal_mode=WAL")
        tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    views = [v for v in store.list_feature_views() if v.online]
    if any(f"{store.project}_{v.name}" not in tables for v in views):
        # CREATE TABLE IF NOT EXISTS for each, as Feast's apply makes them
        store._get_provider().online_store.update(store.config, [], views, [], store.list_entities(), True)
