"""feature_repo/'s definitions against what they declare about their SQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from feast import FeatureView

from tests.sql.helpers import simulated_ticks
from tickstore.settings import Settings
from tickstore_feast.repo import repo_modules, repo_objects


def _views_with_equal_ties() -> list[FeatureView]:
    views = [o for o in repo_objects(repo_modules()) if isinstance(o, FeatureView)]
    return [v for v in views if getattr(v.batch_source, "ties_equal", False)]


def test_the_window_views_and_the_clock_declare_equal_ties() -> None:
    assert sorted(v.name for v in _views_with_equal_ties()) == [
        "tick_clock",
        "ticks_10s",
        "ticks_300s",
        "ticks_60s",
    ]


@pytest.mark.parametrize("view", _views_with_equal_ties(), ids=lambda v: v.name)
def test_views_declaring_equal_ties_give_ticks_sharing_a_time_equal_rows(view: FeatureView) -> None:
    """The point-in-time join takes any of a key's rows at one timestamp for such a view (no sort to
    pick one): checked on 20k simulated ticks, their times cut to 10 ms so that most share one with
    others, sizes missing on some, as in recordings."""
    con = simulated_ticks(seed=3)
    con.execute("UPDATE ticks SET event_time = time_bucket(INTERVAL 10 MILLISECOND, event_time)")
    shared = con.sql(
        "SELECT count(*) FROM (SELECT product_id, event_time FROM ticks GROUP BY ALL HAVING count(*) > 1)"
    ).fetchone()
    assert shared is not None and shared[0] > 1_000  # the check below has ties to look at
    sql = view.batch_source.query  # type: ignore[attr-defined]
    assert view.entities == ["product"]  # keyed by product_id
    times, rows = con.sql(
        f"SELECT count(DISTINCT (product_id, event_time)), count(*) FROM (SELECT DISTINCT * FROM ({sql}))"  # noqa: S608
    ).fetchone()  # type: ignore[misc]
    assert rows == times


def test_what_a_source_declares_survives_the_registry(make_settings: Callable[..., Settings]) -> None:
    """`feast apply` stores the source as a proto; what comes back reads the same SQL, lookback and ties."""
    from tickstore_feast.repo import feature_store

    store = feature_store(make_settings())
    for name in ("ticks_60s", "tick_clock"):
        ours = next(v for v in repo_objects(repo_modules()) if getattr(v, "name", None) == name)
        stored = store.get_feature_view(name).batch_source
        assert stored == ours.batch_source  # type: ignore[union-attr]
        assert stored.ties_equal and stored.lookback == ours.batch_source.lookback  # type: ignore[union-attr,attr-defined]


def test_every_feature_is_described_by_its_sql_comment_in_the_registry(
    make_settings: Callable[..., Settings],
) -> None:
    """`feast apply` registers each field with the comment beside its column in `sql/` (what
    `feast feature-views describe` and `feast ui` show), and each source with its file's first line."""
    from tickstore.feature_sql import SQL_DIR, column_comments
    from tickstore_feast.repo import feature_store

    store = feature_store(make_settings())
    views = store.list_feature_views()
    assert sorted(v.name for v in views) == ["tick_clock", "ticks_10s", "ticks_300s", "ticks_60s"]
    for view in views:
        text = (SQL_DIR / f"{view.name}.sql").read_text()
        said = column_comments(text)
        assert {f.name: f.description for f in view.features} == said
        first = text.splitlines()[0].partition(": ")[2]
        assert view.batch_source.description == first[0].upper() + first[1:]
    described = store.get_feature_view("ticks_60s").features
    assert {f.name: f.description for f in described}["ret_std_60s"] == (
        "sample std of mid-price log returns (NULL with < 2 returns)"
    )


def test_a_view_whose_ties_differ_on_the_lake_is_refused_at_apply(
    make_settings: Callable[..., Settings],
) -> None:
    """`ties_equal=True` is checked on the lake's newest data when tickstore applies: a frame ending at
    the current row (not its last peer) gives ticks sharing a time different counts."""
    from datetime import timedelta

    from feast import Entity, Field
    from feast.types import Int64

    from tests.tickstore_feast.conftest import load, tick_rows
    from tickstore.errors import TickstoreError
    from tickstore_feast.repo import apply_repo, feature_store
    from tickstore_feast.source import DuckDBSource

    s = make_settings()
    # three ticks of one product at one time, then one later: a burst
    load(s, tick_rows([("BTC-USD", 10.0, 100.0), ("BTC-USD", 10.0, 100.5), ("BTC-USD", 10.0, 101.0)]))
    load(s, tick_rows([("BTC-USD", 20.0, 100.0)]))
    store = feature_store(s)
    product = next(o for o in repo_objects(repo_modules()) if isinstance(o, Entity))  # the repo's own

    def view(frame_end: str, ties_equal: bool) -> FeatureView:
        sql = (
            "SELECT product_id, event_time, count(*) OVER (PARTITION BY product_id ORDER BY event_time "
            f"ROWS BETWEEN UNBOUNDED PRECEDING AND {frame_end}) AS n FROM ticks"
        )
        source = DuckDBSource(name="n_src", query=sql, lookback=timedelta(0), ties_equal=ties_equal)
        return FeatureView(
            name="n_ticks", entities=[product], schema=[Field(name="n", dtype=Int64)], source=source
        )

    with pytest.raises(
        TickstoreError,
        match=r"'n_ticks' declares ties_equal=True, but its rows at product_id=BTC-USD, event_time=2026-01-01 00:00:10\+00:00 differ",
    ):
        apply_repo(store, [product, view("CURRENT ROW", ties_equal=True)])
    apply_repo(store, [product, view("CURRENT ROW", ties_equal=False)])  # not declared: nothing to check
    # registered by Feast's own apply (`feast apply`, which does not check): still checked, and refused
    store.apply([product, view("CURRENT ROW", ties_equal=True)])
    with pytest.raises(TickstoreError, match="'n_ticks' declares ties_equal=True"):
        apply_repo(store, [product, view("CURRENT ROW", ties_equal=True)])
    # RANGE's CURRENT ROW ends at the last peer: equal ties, accepted as declared, and not checked again
    sql_ok = view("CURRENT ROW", ties_equal=True)
    sql_ok.batch_source.query = sql_ok.batch_source.query.replace("ROWS BETWEEN", "RANGE BETWEEN")  # type: ignore[union-attr]
    record = Path(store.config.registry.path).parent / "ties_checked.json"
    before = set(json.loads(record.read_text()))  # the repo's own four views, checked on this lake
    assert len(before) == 4
    apply_repo(store, [product, sql_ok])
    assert store.get_feature_view("n_ticks").batch_source.ties_equal  # type: ignore[union-attr]
    assert len(set(json.loads(record.read_text())) - before) == 1


def test_a_tie_older_than_the_newest_minutes_is_still_checked(make_settings: Callable[..., Settings]) -> None:
    """The check's sample includes the minutes up to the lake's newest tie: a burst 20 minutes before
    the newest tick (none since) is found, and a view whose ties differ there is refused."""
    from datetime import timedelta

    from feast import Entity, Field
    from feast.types import Int64

    from tests.tickstore_feast.conftest import load, tick_rows
    from tickstore.errors import TickstoreError
    from tickstore_feast.repo import apply_repo, feature_store
    from tickstore_feast.source import TIES_CHECKED, DuckDBSource

    s = make_settings()
    burst = [("BTC-USD", 10.0, 100.0), ("BTC-USD", 10.0, 100.5)]
    later = [("BTC-USD", float(t), 100.0) for t in range(20, 1_220, 30)]  # one tick at a time
    load(s, tick_rows(burst + later))
    assert later[-1][1] - TIES_CHECKED.total_seconds() > burst[-1][1]  # the newest minutes: no tie
    store = feature_store(s)
    product = next(o for o in repo_objects(repo_modules()) if isinstance(o, Entity))
    sql = (
        "SELECT product_id, event_time, count(*) OVER (PARTITION BY product_id ORDER BY event_time "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n FROM ticks"
    )
    source = DuckDBSource(name="n_src", query=sql, lookback=timedelta(0), ties_equal=True)
    view = FeatureView(
        name="n_ticks", entities=[product], schema=[Field(name="n", dtype=Int64)], source=source
    )
    with pytest.raises(
        TickstoreError, match=r"rows at product_id=BTC-USD, event_time=2026-01-01 00:00:10\+00:00 differ"
    ):
        apply_repo(store, [product, view])


def test_a_table_source_is_sampled_at_its_newest_tie_too(make_settings: Callable[..., Settings]) -> None:
    """A lake table's newest rows sharing a time, 20 minutes before its newest row, are found, and
    sampled: unequal there."""
    from tests.tickstore_feast.conftest import load, tick_rows
    from tickstore import lake
    from tickstore_feast.repo import feature_store
    from tickstore_feast.source import DuckDBSource

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 10.0, 100.0), ("BTC-USD", 10.0, 100.5), ("BTC-USD", 1_210.0, 100.0)]))
    con = lake.connect(s)
    con.execute("CREATE TABLE prices AS SELECT product_id, event_time, price FROM ticks")
    con.close()
    source = DuckDBSource(name="prices_src", table="prices", ties_equal=True)
    config = feature_store(s).config
    newest = source.widest_tie(config, ["product_id"])
    assert newest is not None and newest["n_rows"] == 1  # the newest 10 minutes: one row
    until = source.newest_tie(config)
    assert until is not None and until.isoformat() == "2026-01-01T00:00:10+00:00"
    tie = source.widest_tie(config, ["product_id"], until=until)
    assert tie is not None and (tie["n_rows"], tie["n_distinct"]) == (2, 2) and tie["event_time"] == until


def test_the_newest_tie_is_searched_among_the_newest_ticks_written(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that the search costs the same however large the lake: a tie written before the newest
    ``TIES_SEARCHED`` ticks is not looked for."""
    from datetime import timedelta

    from tests.tickstore_feast.conftest import load, tick_rows
    from tickstore_feast import source as source_module
    from tickstore_feast.repo import feature_store

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 10.0, 100.0), ("BTC-USD", 10.0, 100.5)]))
    load(s, tick_rows([("BTC-USD", float(t), 100.0) for t in range(20, 520, 10)]))  # 50 ticks, no tie
    source = source_module.DuckDBSource(name="n_src", query="SELECT * FROM ticks", lookback=timedelta(0))
    config = feature_store(s).config
    monkeypatch.setattr(source_module, "TIES_SEARCHED", 52)  # the burst's two rows and the 50 after
    found = source.newest_tie(config)
    assert found is not None and found.isoformat() == "2026-01-01T00:00:10+00:00"
    monkeypatch.setattr(source_module, "TIES_SEARCHED", 51)  # one of the burst's two rows: no tie
    assert source.newest_tie(config) is None
