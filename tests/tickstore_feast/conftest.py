"""Fixtures: a lake filled with given ticks, and a Feast store on it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from tickstore import lake
from tickstore.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def tick_rows(rows: list[tuple[str, float, float]], start: datetime = T0) -> pa.Table:
    """(product, seconds after ``start``, mid) -> rows of the ticks table (1-cent spread, equal sizes)."""
    n = len(rows)
    return pa.table(
        {
            "product_id": [r[0] for r in rows],
            "event_time": pa.array(
                [start + timedelta(seconds=r[1]) for r in rows], pa.timestamp("us", tz="UTC")
            ),
            "sequence": list(range(n)),
            "tick_id": pa.array(range(n), pa.uint64()),
            "price": [r[2] for r in rows],
            "best_bid": [r[2] - 0.005 for r in rows],
            "best_ask": [r[2] + 0.005 for r in rows],
            "best_bid_size": [1.0] * n,
            "best_ask_size": [2.0] * n,
        }
    )


def load(settings: Settings, table: pa.Table) -> int:
    """Append ``table`` to the lake's ticks; returns the new snapshot id."""
    con = lake.connect(settings)
    con.register("new_ticks", table)
    con.execute("INSERT INTO ticks BY NAME SELECT * FROM new_ticks")
    snapshot = lake.current_snapshot(con)
    con.close()
    return snapshot


@pytest.fixture
def lake_with(make_settings: Callable[..., Settings]) -> Callable[[list[tuple[str, float, float]]], Settings]:
    def factory(rows: list[tuple[str, float, float]]) -> Settings:
        s = make_settings()
        load(s, tick_rows(rows))
        return s

    return factory
