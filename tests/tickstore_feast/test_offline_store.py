"""DuckDBOfflineStore through real Feast: point-in-time correctness, TTL, unknown keys, materialization."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import REPO
from tests.tickstore_feast.conftest import T0, load, tick_rows
from tickstore import lake
from tickstore.settings import Settings
from tickstore_feast.repo import feature_store

FEATURES = ["ticks_60s:tick_count_60s", "ticks_60s:ret_mean_60s", "ticks_300s:tick_count_300s"]


def entities(rows: list[tuple[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {"product_id": [p for p, _ in rows], "event_timestamp": [T0 + timedelta(seconds=s) for _, s in rows]}
    )


def historical(
    settings: Settings, rows: list[tuple[str, float]], features: list[str] = FEATURES
) -> pd.DataFrame:
    store = feature_store(settings)
    return store.get_historical_features(entity_df=entities(rows), features=features).to_df()


def test_no_value_from_after_the_entity_timestamp(lake_with: Callable[..., Settings]) -> None:
    s = lake_with([("A", 0, 100.0), ("A", 10, 101.0), ("A", 20, 102.0)])
    df = historical(s, [("A", 9.999999), ("A", 10), ("A", 19)])
    assert df["tick_count_60s"].tolist() == [1, 2, 2]  # the tick at 10 s only from 10 s on
    assert math.isnan(df["ret_mean_60s"][0]) and df["ret_mean_60s"][1] == pytest.approx(math.log(101 / 100))


def test_ttl_expiry_gives_null_and_unknown_products_give_null(lake_with: Callable[..., Settings]) -> None:
    s = lake_with([("A", 0, 100.0), ("A", 20, 102.0)])
    df = historical(s, [("A", 80), ("A", 80.000001), ("A", 320.000001), ("B", 20)])
    # 60 s TTL: the row at 20 s serves until 80 s inclusive, then NULL; the 300 s view keeps serving
    assert df["tick_count_60s"].isna().tolist() == [False, True, True, True]
    assert df["tick_count_300s"].tolist()[:2] == [2, 2]
    assert df["tick_count_300s"].isna().tolist() == [False, False, True, True]


def test_without_entity_rows_every_key_of_the_range_as_of_its_end(lake_with: Callable[..., Settings]) -> None:
    """Feast's non-entity mode (`start_date`/`end_date`, `feast get-historical-features -s -e`): each
    product with rows in the range, at its end, valued as an entity row there would be (TTL too)."""
    s = lake_with([("A", 0, 100.0), ("A", 100, 101.0), ("B", 10, 10.0), ("B", 30, 10.5), ("C", 400, 5.0)])
    store = feature_store(s)
    end = T0 + timedelta(seconds=120)
    got = store.get_historical_features(
        features=FEATURES,
        start_date=T0,
        end_date=end.replace(tzinfo=None),  # naive: UTC, as Feast reads it
    ).to_df()
    # C's only tick is after the end: no row; B's last is 90 s old at the end: past the 60 s view's TTL
    assert got["product_id"].tolist() == ["A", "B"] and (got["event_timestamp"] == end).all()
    expected = historical(s, [("A", 120), ("B", 120)])
    pd.testing.assert_frame_equal(got[expected.columns].reset_index(drop=True), expected, check_dtype=False)
    assert got["tick_count_60s"].isna().tolist() == [False, True] and got["tick_count_300s"].tolist() == [
        2,
        2,
    ]


@pytest.mark.filterwarnings("error")  # pandas warns when a time it converts loses its nanoseconds
def test_naive_and_nanosecond_entity_times_read_as_utc_microseconds(
    lake_with: Callable[..., Settings],
) -> None:
    """Entity times without a zone are UTC, and finer than a microsecond are cut to one, as DuckDB
    reads them; the range of lake rows read follows them (the last tick at exactly the last entity
    row's microsecond is in it)."""
    s = lake_with([("A", 0, 100.0), ("A", 10, 101.0), ("B", 10.000001, 10.0)])
    naive = pd.Series(
        [
            pd.Timestamp(T0.replace(tzinfo=None)) + pd.Timedelta(seconds=10, nanoseconds=999),
            pd.Timestamp(T0.replace(tzinfo=None)) + pd.Timedelta(seconds=10, microseconds=1, nanoseconds=500),
        ]
    )
    frame = pd.DataFrame({"product_id": ["A", "B"], "event_timestamp": naive})
    got = feature_store(s).get_historical_features(entity_df=frame, features=FEATURES).to_df()
    assert got["tick_count_60s"].tolist() == [2, 1]
    aware = historical(s, [("A", 10), ("B", 10.000001)])
    pd.testing.assert_frame_equal(got.drop(columns="event_timestamp"), aware.drop(columns="event_timestamp"))


def test_rows_come_back_in_entity_order_with_entity_columns(lake_with: Callable[..., Settings]) -> None:
    s = lake_with([("A", 0, 100.0), ("B", 0, 10.0)])
    rows = [("B", 5), ("A", 5), ("B", 1), ("A", 2)]
    df = historical(s, rows)
    assert list(zip(df["product_id"], df["event_timestamp"], strict=True)) == list(
        zip(*entities(rows).to_dict("list").values(), strict=True)
    )


def test_keys_matched_by_hash_by_value_or_after_a_collision_give_the_same_rows(
    lake_with: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ASOF join matches keys by their hash where both sides type them alike; a collision (forced
    here: every key hashed to 0, so rows of other products are picked) is caught and the join run on
    the keys themselves. A NULL key matches nothing either way."""
    import duckdb

    from tickstore_feast import pit
    from tickstore_feast.offline_store import lake_connection

    s = lake_with([("A", 0, 100.0), ("A", 30, 101.0), ("B", 10, 10.0), ("B", 50, 10.5), ("C", 20, 5.0)])
    rows = [("A", 40), ("B", 40), ("C", 25), ("A", 5), ("B", 55), ("D", 30), (None, 30)]
    hashed = historical(s, rows)  # type: ignore[arg-type]
    assert hashed["tick_count_60s"].tolist()[:5] == [2, 1, 1, 1, 2]
    assert hashed["tick_count_60s"].isna().tolist()[5:] == [True, True]

    with monkeypatch.context() as m:
        m.setattr(pit, "_typed_alike", lambda con, joins: [False] * len(joins))
        pd.testing.assert_frame_equal(historical(s, rows), hashed)  # type: ignore[arg-type]

    monkeypatch.setattr(pit, "_key_hash", lambda alias, keys: "0::UBIGINT")
    job = feature_store(s).get_historical_features(entity_df=entities(rows), features=FEATURES)  # type: ignore[arg-type]
    con = lake_connection(job.config)
    query = job.build(con)  # type: ignore[attr-defined]
    with pytest.raises(duckdb.Error, match=pit.COLLISION):
        con.execute(query.sql, query.params)
    con.close()
    pd.testing.assert_frame_equal(job.to_df(), hashed)


def test_full_feature_names(lake_with: Callable[..., Settings]) -> None:
    s = lake_with([("A", 0, 100.0)])
    store = feature_store(s)
    df = store.get_historical_features(
        entity_df=entities([("A", 1)]), features=["ticks_10s:tick_count_10s"], full_feature_names=True
    ).to_df()
    assert df["ticks_10s__tick_count_10s"].tolist() == [1]


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[tuple[str, float, float]], list[tuple[str, float]]]:
    n = draw(st.integers(1, 60))
    # coarse times so that ties (bursts) are common; arrival order shuffled
    ticks = [
        (draw(st.sampled_from("AB")), draw(st.integers(0, 400)) / 2, 100.0 + draw(st.integers(-50, 50)) / 10)
        for _ in range(n)
    ]
    random.Random(draw(st.integers(0, 1000))).shuffle(ticks)
    ents = [
        (draw(st.sampled_from("ABC")), draw(st.integers(0, 900)) / 2) for _ in range(draw(st.integers(1, 30)))
    ]
    return ticks, ents


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=streams())
def test_equals_a_brute_force_point_in_time_reference(
    make_settings: Callable[..., Settings],
    case: tuple[list[tuple[str, float, float]], list[tuple[str, float]]],
) -> None:
    ticks, ents = case
    s = make_settings(home=make_settings().home.parent / uuid.uuid4().hex)  # a fresh lake per example
    load(s, tick_rows(ticks))
    got = historical(
        s, ents, ["ticks_60s:tick_count_60s", "ticks_60s:ret_std_60s", "ticks_10s:price_range_10s"]
    )

    # Reference: the view SQL over ALL ticks (no time restriction), then, per entity row, the latest
    # row at or before its time, within the TTL, found by scanning in Python.
    con = lake.connect(s, create=False)
    truth = {}
    for view in ("ticks_60s", "ticks_10s"):
        rel = con.sql((REPO / "sql" / f"{view}.sql").read_text())
        truth[view] = [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
    for i, (product, sec) in enumerate(ents):
        t = T0 + timedelta(seconds=sec)
        for view, ttl, feature in [
            ("ticks_60s", 60, "tick_count_60s"),
            ("ticks_60s", 60, "ret_std_60s"),
            ("ticks_10s", 10, "price_range_10s"),
        ]:
            rows = [r for r in truth[view] if r["product_id"] == product and r["event_time"] <= t]
            expected = None
            if rows:
                best = max(rows, key=lambda r: r["event_time"])
                if best["event_time"] >= t - timedelta(seconds=ttl):
                    expected = best[feature]
            value = got[feature][i]
            if expected is None:
                assert value is None or pd.isna(value), (product, sec, feature, value)
            else:
                assert value == pytest.approx(expected, rel=1e-12, abs=1e-15), (product, sec, feature)


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_materialize_puts_the_latest_offline_row_online(
    lake_with: Callable[..., Settings], request: pytest.FixtureRequest, online: str
) -> None:
    s = lake_with([("A", 0, 100.0), ("A", 30, 101.0), ("B", 10, 10.0)])
    if online == "redis":
        s = s.model_copy(update={"online_store": "redis", "redis_url": request.getfixturevalue("redis_url")})
    store = feature_store(s)
    assert store.config.online_store.type == online
    store.materialize(T0 - timedelta(seconds=1), T0 + timedelta(seconds=31))
    online = store.get_online_features(
        features=["ticks_60s:tick_count_60s", "ticks_60s:ret_mean_60s"],
        entity_rows=[{"product_id": "A"}, {"product_id": "B"}, {"product_id": "Z"}],
    ).to_dict()
    assert online["tick_count_60s"] == [2, 1, None]
    assert online["ret_mean_60s"][0] == pytest.approx(math.log(101 / 100))
    # and incrementally: a new tick, materialize-incremental, the online value moves
    load(s, tick_rows([("A", 40, 102.0)]))
    store.materialize_incremental(T0 + timedelta(seconds=41))
    assert store.get_online_features(
        features=["ticks_60s:tick_count_60s"], entity_rows=[{"product_id": "A"}]
    ).to_dict()["tick_count_60s"] == [3]


def test_a_snapshot_pinned_store_ignores_later_ticks(lake_with: Callable[..., Settings]) -> None:
    s = lake_with([("A", 0, 100.0)])
    con = lake.connect(s)
    pinned = lake.current_snapshot(con)
    con.close()
    load(s, tick_rows([("A", 1, 101.0)]))
    old = (
        feature_store(s, snapshot=pinned)
        .get_historical_features(entity_df=entities([("A", 2)]), features=["ticks_60s:tick_count_60s"])
        .to_df()
    )
    new = historical(s, [("A", 2)], ["ticks_60s:tick_count_60s"])
    assert old["tick_count_60s"].tolist() == [1] and new["tick_count_60s"].tolist() == [2]


def test_reading_a_non_duckdb_source_is_a_clear_error() -> None:
    from feast import FileSource

    from tickstore_feast.offline_store import _source

    with pytest.raises(TypeError, match="reads DuckDBSource only"):
        _source(FileSource(name="x", path="x.parquet", timestamp_field="ts"))


def test_a_view_naming_a_column_its_source_lacks_says_so_when_read(
    lake_with: Callable[..., Settings],
) -> None:
    # registered as Feast's own `feast apply` does (FeatureStore.apply checks no schema against its SQL)
    from feast import FeatureView, Field
    from feast.types import Float64

    from tickstore.errors import TickstoreError
    from tickstore_feast.repo import definitions

    s = lake_with([("A", 0, 100.0)])
    store, d = feature_store(s), definitions()
    typo = FeatureView(
        name="typo",
        entities=[d.product],
        ttl=timedelta(seconds=60),
        schema=[Field(name="ret_sd_60s", dtype=Float64)],
        source=d.ticks_60s.batch_source,
    )
    store.apply([typo])
    with pytest.raises(TickstoreError, match=r'(?s)"ret_sd_60s" not found.*`tickstore feast plan` checks'):
        store.get_historical_features(entity_df=entities([("A", 1)]), features=["typo:ret_sd_60s"]).to_df()


def test_pull_all_and_pull_latest_read_the_requested_range(lake_with: Callable[..., Settings]) -> None:
    from tickstore_feast.offline_store import DuckDBOfflineStore

    s = lake_with([("A", 0, 100.0), ("A", 30, 101.0), ("A", 90, 102.0), ("B", 45, 10.0)])
    store = feature_store(s)
    view = store.get_feature_view("ticks_60s")
    args = (store.config, view.batch_source, ["product_id"], ["tick_count_60s"], "event_time", None)
    window = (T0 + timedelta(seconds=20), T0 + timedelta(seconds=60))
    everything = DuckDBOfflineStore.pull_all_from_table_or_query(*args, *window).to_df()
    assert sorted(zip(everything["product_id"], everything["tick_count_60s"], strict=True)) == [
        ("A", 2),
        ("B", 1),
    ]
    latest = DuckDBOfflineStore.pull_latest_from_table_or_query(
        *args, T0, T0 + timedelta(seconds=100)
    ).to_df()
    # A's newest row is at 90 s; its window [30 s, 90 s] holds the ticks at 30 and 90: computed from the
    # restricted read, it still counts the tick 60 s before it
    assert sorted(zip(latest["product_id"], latest["tick_count_60s"], strict=True)) == [("A", 2), ("B", 1)]
    # from year 1: the read starts there, not a lookback before it (an OverflowError)
    year_one = datetime(1, 1, 1, tzinfo=UTC)
    latest = DuckDBOfflineStore.pull_latest_from_table_or_query(
        *args, year_one, T0 + timedelta(seconds=100)
    ).to_df()
    assert sorted(zip(latest["product_id"], latest["tick_count_60s"], strict=True)) == [("A", 2), ("B", 1)]


def test_pull_reads_both_ends_of_its_range(lake_with: Callable[..., Settings]) -> None:
    """A row at exactly the range's start or end is in it, as Feast's own stores read it (BETWEEN):
    `feast materialize` to a tick's own time puts that tick online."""
    from tickstore_feast.offline_store import DuckDBOfflineStore

    s = lake_with([("A", t, 100.0 + t) for t in (19.999999, 20, 40, 60, 60.000001)])
    store = feature_store(s)
    view = store.get_feature_view("ticks_60s")
    args = (store.config, view.batch_source, ["product_id"], ["tick_count_60s"], "event_time", None)
    window = (T0 + timedelta(seconds=20), T0 + timedelta(seconds=60))
    everything = DuckDBOfflineStore.pull_all_from_table_or_query(*args, *window).to_df()
    assert sorted(everything["event_time"]) == [T0 + timedelta(seconds=t) for t in (20, 40, 60)]
    latest = DuckDBOfflineStore.pull_latest_from_table_or_query(*args, *window).to_df()
    assert latest["event_time"].tolist() == [T0 + timedelta(seconds=60)]
    # its window [0 s, 60 s] counts 19.999999 s too: read from a lookback before the range
    assert latest["tick_count_60s"].tolist() == [4]


def test_entity_rows_given_as_sql_and_extra_entity_columns(lake_with: Callable[..., Settings]) -> None:
    s = lake_with([("A", 0, 100.0), ("A", 10, 101.0)])
    store = feature_store(s)
    at = (T0 + timedelta(seconds=10)).isoformat()
    # SQL entity rows run on the lake connection; columns beyond key and time come back untouched
    df = store.get_historical_features(
        entity_df=f"SELECT 'A' AS product_id, TIMESTAMPTZ '{at}' AS event_timestamp, 7 AS label",
        features=["ticks_60s:tick_count_60s"],
    ).to_df()
    assert df[["product_id", "label", "tick_count_60s"]].values.tolist() == [["A", 7, 2]]


def test_settings_follow_the_environment(
    lake_with: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's settings are made once per home and environment: a changed TICKSTORE_ variable
    is read, an unchanged environment gives the settings made before."""
    from tickstore_feast.offline_store import settings_for

    config = feature_store(lake_with([("A", 0, 100.0)])).config
    first = settings_for(config)
    assert settings_for(config) is first
    monkeypatch.setenv("TICKSTORE_DUCKDB_BLOCK_POOL", "0")
    assert settings_for(config).duckdb_block_pool == "0"
    monkeypatch.delenv("TICKSTORE_DUCKDB_BLOCK_POOL")
    monkeypatch.setenv("tickstore_duckdb_block_pool", "25%")  # any case, as pydantic-settings reads it
    assert settings_for(config).duckdb_block_pool == "25%"
