"""The SQLite online store as tickstore prepares it: WAL mode, a table for every registered view."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from serving.features import OnlineFeatures
from tests.cli.helpers import tickstore
from tests.threads import at_once
from tests.tickstore_feast.conftest import load, tick_rows
from tickstore.settings import Settings
from tickstore_feast import sqlite_online
from tickstore_feast.repo import feature_store


def test_a_removed_online_store_is_made_again_empty_and_materialize_fills_it(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    load(s, tick_rows([("BTC-USD", i, 100.0 + i / 100) for i in range(120)]))
    tickstore(s, "feast", "apply")
    tickstore(s, "feast", "materialize", "2025-12-31T23:59:00", "2026-01-01T00:03:00")
    # the way to empty it: Feast's registry still records its tables, so its apply makes none again
    # and every read said "no such table" (materialize: a traceback)
    for part in (s.home / "feast").glob("online_store.db*"):
        part.unlink()
    assert "No changes to infrastructure" in tickstore(s, "feast", "apply").stdout
    # the scorer's reader (and `tickstore status`): no features yet, not an online store that failed
    assert [r.age_s for r in OnlineFeatures(s).read(["BTC-USD"])] == [None]
    with sqlite3.connect(s.home / "feast" / "online_store.db") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tickstore(s, "feast", "materialize", "2025-12-31T23:59:00", "2026-01-01T00:03:00")
    online = feature_store(s, apply=False).get_online_features(
        features=["ticks_60s:tick_count_60s"], entity_rows=[{"product_id": "BTC-USD"}]
    )
    assert online.to_dict()["tick_count_60s"] == [61]


def test_processes_opening_a_new_online_store_together_all_find_it_ready(
    make_settings: Callable[..., Settings],
) -> None:
    # the stream, the scorer and `feast apply` starting together on a new home: switched to WAL in
    # place, two that both found the file new deadlocked on the switch and SQLite failed one at once
    # ("database is locked")
    store = feature_store(make_settings(), apply=False, online=False)
    path = Path(store.config.online_store.path).resolve()
    for round_ in range(500):
        for part in path.parent.glob(path.name + "*"):
            part.unlink()
        assert at_once(lambda: sqlite_online.open_file(store)) == [], f"round {round_}"
        with closing(sqlite3.connect(path)) as con:
            assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
