"""`tickstore feast plan`: an edited view's SQL as a diff, and whether the scorer takes it for new."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from feast import Entity, FeatureView, ValueType

from tests.cli.helpers import tickstore
from tests.tickstore_feast.conftest import load, tick_rows
from tickstore.settings import Settings
from tickstore_feast.plan import record_only, source_diffs
from tickstore_feast.source import DuckDBSource

SQL = """-- v: a test view
-- lookback: 10 s
SELECT product_id, event_time,
    count(*) OVER w AS n  -- ticks
FROM ticks
WINDOW w AS (PARTITION BY product_id ORDER BY event_time)
"""


def view(query: str, name: str = "v", **options: object) -> FeatureView:
    entity = Entity(name="product", join_keys=["product_id"], value_type=ValueType.STRING)
    source = DuckDBSource(name=name, query=query, **options)  # type: ignore[arg-type]
    return FeatureView(name=name, entities=[entity], source=source, ttl=timedelta(seconds=10))


def test_only_views_whose_source_changed_get_a_diff_and_a_verdict() -> None:
    reworded = SQL.replace("-- ticks", "-- ticks in the frame")
    changed = SQL.replace("count(*)", "count(event_time)")
    diffs = source_diffs(
        [view(SQL, "same"), view(SQL, "comment"), view(SQL, "new_sql"), view(SQL, "ties")],
        [
            view(SQL, "same"),
            view(reworded, "comment"),
            view(changed, "new_sql"),
            view(SQL, "ties", ties_equal=True),
            view(SQL, "not_registered"),
        ],
    )
    assert [(d.splitlines()[0], same) for d, same in diffs] == [
        ("--- comment (registered)", True),
        ("--- new_sql (registered)", False),
        ("--- ties (registered)", True),  # an option: the scorer compares the SQL alone
    ]
    comment, new_sql, ties = (d for d, _ in diffs)
    assert (
        "-    count(*) OVER w AS n  -- ticks\n+    count(*) OVER w AS n  -- ticks in the frame\n" in comment
    )
    assert "-    count(*) OVER w" in new_sql and "+    count(event_time) OVER w" in new_sql
    assert (
        "-- DuckDBSource: lookback 10 s, ties_equal False\n+-- DuckDBSource: lookback 10 s, ties_equal True"
        in ties
    )
    # a source of another kind has no text of ours to compare: left to Feast's plan
    assert source_diffs([view(SQL, "t")], [view(SQL, "t", table=None)]) == []


def test_views_differing_only_by_feasts_materialization_record_are_named() -> None:
    from datetime import UTC, datetime

    registered = [view(SQL, "materialized"), view(SQL, "edited"), view(SQL, "never_materialized")]
    for v in registered[:2]:
        v.materialization_intervals = [(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))]
    defined = [view(SQL, "materialized"), view(SQL + "-- more\n", "edited"), view(SQL, "never_materialized")]
    assert record_only(registered, defined) == ["materialized"]  # `edited` is a change of its own


@pytest.mark.slow
def test_tickstore_feast_plan_shows_the_registered_sql_against_feature_repo(
    make_settings: Callable[..., Settings],
) -> None:
    from tickstore_feast.repo import feature_store

    s = make_settings()
    load(s, tick_rows([("BTC-USD", i, 100.0 + i / 100) for i in range(30)]))
    tickstore(s, "feast", "apply")
    unchanged = tickstore(s, "feast", "plan").stdout
    assert "Changed feature SQL" not in unchanged and "A plan:" not in unchanged
    # the registry as an older feature_repo/ left it: ticks_10s computed otherwise, ticks_300s worded otherwise
    store = feature_store(s, apply=False)
    older = []
    for name, old, new in (
        ("ticks_10s", "(back + ahead + 1) / 10.0 AS", "(back + ahead) / 10.0 AS"),
        ("ticks_300s", "-- ticks in the window (the frame's rows)", "-- the window's ticks"),
    ):
        registered = store.get_feature_view(name)
        source = registered.batch_source
        assert old in source.query
        registered.batch_source = DuckDBSource(
            name=source.name, query=source.query.replace(old, new), ties_equal=source.ties_equal
        )
        older.append(registered)
    store.apply(older)

    # Feast's plan then lists every view as updated: the registry records what was materialized
    tickstore(s, "feast", "materialize", "2025-12-31T23:59:00", "2026-01-01T00:01:00")
    out = tickstore(s, "feast", "--log-level", "WARNING", "plan").stdout  # Feast's options before `plan`
    assert all(
        f"Updated feature view {v}" in out for v in ("tick_clock", "ticks_10s", "ticks_60s", "ticks_300s")
    )
    recorded = next(line for line in out.splitlines() if "for Feast's record of their materialized" in line)
    assert sorted(recorded.split(":")[0].split(", ")) == ["tick_clock", "ticks_60s"]  # not the two edited
    shown = out[out.index("Changed feature SQL (registered -> feature_repo/):") :].splitlines()
    verdicts = [line.split(":")[0] for line in shown if line.startswith("(")]
    assert verdicts == ["(a new definition", "(comments, layout or options only"]
    assert [line for line in shown if line.startswith("--- ")] == [
        "--- ticks_10s (registered)",
        "--- ticks_300s (registered)",
    ]
    changed = [line for line in shown if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert [line.split(" AS")[0].strip() for line in changed[:2]] == [
        "-    (back + ahead) / 10.0",
        "+    (back + ahead + 1) / 10.0",
    ]
    assert changed[2].endswith("-- the window's ticks") and changed[3].endswith("(the frame's rows)")
    # Feast words a plan as done ("Updated feature view ..."): said to be a plan, after everything
    assert out.rstrip().splitlines()[-1] == (
        "A plan: nothing above is registered, created or deleted yet; `tickstore feast apply` does it."
    )
    tickstore(s, "feast", "apply")
    assert "Changed feature SQL" not in tickstore(s, "feast", "plan").stdout
