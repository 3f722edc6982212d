"""The stream's online path: a view's newest rows by its own SQL, written through Feast's provider."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.conftest import files_capped_at, free_port
from tests.tickstore_feast.conftest import load, tick_rows
from tickstore import lake
from tickstore.settings import Settings
from tickstore_feast.online import (
    CLOCK_VIEW,
    UNAVAILABLE,
    OnlineStoreUnavailable,
    check_online_store,
    holds_nothing,
    latest_rows,
    redis_read,
    unreadable,
    write_rows,
)
from tickstore_feast.repo import definitions, feature_store


def online_values(store, view: str, product: str) -> dict:
    names = [f"{view}:{f.name}" for f in store.get_feature_view(view).features]
    got = store.get_online_features(features=names, entity_rows=[{"product_id": product}]).to_dict()
    return {k: v[0] for k, v in got.items() if k != "product_id"}


def test_written_rows_read_back_as_the_sql_computed_them(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    ticks = tick_rows([("BTC-USD", 0.0, 100.0), ("BTC-USD", 30.0, 101.0), ("ETH-USD", 10.0, 50.0)])
    # ETH's sizes were not recorded: its imbalance is NULL online too, not 0 or NaN
    eth = pc.equal(ticks["product_id"], "ETH-USD")
    for col in ("best_bid_size", "best_ask_size"):
        i = ticks.schema.get_field_index(col)
        ticks = ticks.set_column(i, col, pc.if_else(eth, None, ticks[col]))
    load(s, ticks)
    store = feature_store(s)
    view = store.get_feature_view("ticks_60s")
    con = lake.connect(s)
    rows = latest_rows(con, view.batch_source, ["BTC-USD", "ETH-USD", "XRP-USD"], tail="ticks")
    assert sorted(rows["product_id"].to_pylist()) == ["BTC-USD", "ETH-USD"]  # XRP has no ticks

    write_rows(store, view, rows)

    for row in rows.to_pylist():
        online = online_values(store, "ticks_60s", row["product_id"])
        assert set(online) == {f.name for f in view.features}
        for name, value in online.items():
            expected = row[name]
            if expected is None:
                assert value is None, name
            else:
                assert type(value) is type(expected) and value == expected, name
    btc = online_values(store, "ticks_60s", "BTC-USD")
    assert btc["tick_count_60s"] == 2
    assert math.isclose(btc["ret_mean_60s"], math.log(202) - math.log(200), rel_tol=1e-12)
    assert online_values(store, "ticks_60s", "ETH-USD")["imbalance_mean_60s"] is None


def test_an_empty_batch_writes_nothing(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    store = feature_store(s)
    view = store.get_feature_view("ticks_60s")
    rows = latest_rows(lake.connect(s), view.batch_source, ["XRP-USD"], tail="ticks")
    assert rows.num_rows == 0
    write_rows(store, view, rows)
    assert online_values(store, "ticks_60s", "XRP-USD")["tick_count_60s"] is None


def test_a_sqlite_store_the_disk_refuses_is_worth_waiting_for_a_missing_table_is_not(
    make_settings: Callable[..., Settings],
) -> None:
    import sqlite3

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0), ("BTC-USD", 1.0, 100.5)]))
    store = feature_store(s)
    view = store.get_feature_view("ticks_60s")
    rows = latest_rows(lake.connect(s), view.batch_source, ["BTC-USD"], tail="ticks")
    write_rows(store, view, rows)  # the table and the file exist

    # no file may grow, as on a full disk: the stream waits such a store out (it died of it) and
    # says why
    many = pa.concat_tables([rows] * 2000)  # new keys need new pages: the file must grow
    many = many.set_column(0, "product_id", pa.array([f"P{i}-USD" for i in range(many.num_rows)]))
    with files_capped_at(1), pytest.raises(OnlineStoreUnavailable) as refused:
        write_rows(store, view, many)
    assert "online store write of ticks_60s failed" in str(refused.value)
    assert any(hint in str(refused.value) for hint in ("the disk is full", "the disk failed"))

    with sqlite3.connect(store.config.online_store.path) as db:
        db.execute("DROP TABLE tickstore_ticks_60s")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):  # waiting would not mend it
        write_rows(store, view, rows)


def test_a_redis_that_does_not_answer_is_named_at_once_with_what_to_do(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    check_online_store(feature_store(make_settings()))  # SQLite: a file, nothing to reach
    check_online_store(feature_store(make_settings(online_store="redis", redis_url=redis_url)))
    closed = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(OnlineStoreUnavailable, match=f"Redis online store at {closed} does not answer"):
        check_online_store(feature_store(make_settings(online_store="redis", redis_url=closed)))
    assert time.monotonic() - started < 5  # not redis-py's ~10 s of retries (room for a loaded machine)


def test_one_round_trip_reads_what_feasts_per_view_reads_give(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    s = make_settings(online_store="redis", redis_url=redis_url)
    load(s, tick_rows([("BTC-USD", 0.0, 100.0), ("BTC-USD", 5.0, 101.0), ("ETH-USD", 3.0, 50.0)]))
    store = feature_store(s)
    con = lake.connect(s)
    views = [store.get_feature_view(v) for v in ("tick_clock", "ticks_10s", "ticks_60s")]
    for view in views:
        write_rows(store, view, latest_rows(con, view.batch_source, ["BTC-USD", "ETH-USD"], tail="ticks"))
    keys = [
        EntityKey(join_keys=["product_id"], entity_values=[Value(string_val=p)])
        for p in ("ETH-USD", "NOPE-USD", "BTC-USD")
    ]
    reads = [(v, [f.name for f in v.features]) for v in views]
    asked = [list(names) for _, names in reads]

    together = redis_read(store, reads, keys)

    provider = store._get_provider()
    one_by_one = [
        provider.online_read(config=store.config, table=v, entity_keys=keys, requested_features=list(names))
        for v, names in reads
    ]
    assert together == one_by_one and together is not None
    assert together[2][2][1]["tick_count_60s"].int64_val == 2  # BTC-USD, the third key, in ticks_60s
    assert [list(names) for _, names in reads] == asked  # Feast appends to the list it is given
    assert redis_read(feature_store(make_settings()), reads, keys) is None  # SQLite: read view by view


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_a_later_tick_at_the_newest_time_reaches_the_online_store(
    make_settings: Callable[..., Settings], request: pytest.FixtureRequest, online: str
) -> None:
    # the stream writes a product's newest row again when a tick of the same microsecond comes in a
    # later batch: Feast's Redis store kept the first write (its time was not later), so online
    # counted 2 ticks where the offline SQL counts 3, until the product's next tick
    s = make_settings()
    if online == "redis":
        s = s.model_copy(update={"online_store": "redis", "redis_url": request.getfixturevalue("redis_url")})
    store = feature_store(s)
    view = store.get_feature_view("ticks_60s")
    counts = []
    for ticks in ([("A", 0.0, 100.0), ("A", 10.0, 101.0)], [("A", 10.0, 102.0)]):
        load(s, tick_rows(ticks))
        con = lake.connect(s)
        write_rows(store, view, latest_rows(con, view.batch_source, ["A"], tail="ticks"))
        con.close()
        counts.append(online_values(store, "ticks_60s", "A")["tick_count_60s"])
    assert counts == [2, 3]


def test_a_damaged_sqlite_file_is_named_with_how_to_make_it_again(
    make_settings: Callable[..., Settings],
) -> None:
    from tickstore_feast.sqlite_online import OnlineStoreDamaged

    s = make_settings()
    path = s.home / "feast" / "online_store.db"
    feature_store(s)
    assert path.exists()
    for part in path.parent.glob("online_store.db*"):
        part.write_bytes(b"\0" * 4096)  # cut short, overwritten
    # Feast's apply met it first: sqlite3.DatabaseError's traceback from the stream, scorer and status
    with pytest.raises(OnlineStoreDamaged, match=rf"the online store {path} is damaged .*rm {path}\*"):
        feature_store(s)
    for part in path.parent.glob("online_store.db*"):
        part.unlink()
    feature_store(s)  # made again, as the message says


def test_rows_go_to_a_redis_over_tls_and_come_back(
    make_settings: Callable[..., Settings],
    redis_port: int,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.tls_relay import tls_relay

    db = redis_url.rsplit("db=", 1)[1]
    with tls_relay(tmp_path, redis_port) as relay:
        # a CA of one's own is trusted the way OpenSSL is told: SSL_CERT_FILE (README, the settings)
        monkeypatch.setenv("SSL_CERT_FILE", str(relay.ca))
        s = make_settings(online_store="redis", redis_url=f"rediss://127.0.0.1:{relay.port}/{db}")
        load(s, tick_rows([("BTC-USD", 0.0, 100.0), ("BTC-USD", 30.0, 101.0)]))
        store = feature_store(s)
        check_online_store(store)
        view = store.get_feature_view("ticks_60s")
        write_rows(store, view, latest_rows(lake.connect(s), view.batch_source, ["BTC-USD"], tail="ticks"))
        assert online_values(store, "ticks_60s", "BTC-USD")["tick_count_60s"] == 2
        monkeypatch.delenv("SSL_CERT_FILE")
        untrusted = feature_store(make_settings(online_store="redis", redis_url=s.redis_url))
        with pytest.raises(OnlineStoreUnavailable, match="certificate verify failed") as caught:
            check_online_store(untrusted)
        assert "point SSL_CERT_FILE at the CA" in str(caught.value) and "start redis-server" not in str(
            caught.value
        )
        # a read that fails so (a scorer's, the stream's) says the same
        with pytest.raises(UNAVAILABLE) as failed:
            online_values(untrusted, "ticks_60s", "BTC-USD")
        said = unreadable(untrusted, failed.value)
        assert "point SSL_CERT_FILE at the CA" in said and "start redis-server" not in said, said


def test_a_store_holds_nothing_until_the_clock_is_written_and_a_shared_redis_is_not_judged(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    s = make_settings()
    store = feature_store(s, apply=False, online=False)
    clock = getattr(definitions(), CLOCK_VIEW)
    path = Path(store.config.online_store.path)
    assert not path.exists() and holds_nothing(store, clock)
    assert not path.exists()  # asking made no file
    store = feature_store(s)  # applied: the tables are made, empty
    assert holds_nothing(store, clock)
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    view = store.get_feature_view(CLOCK_VIEW)
    write_rows(store, view, latest_rows(lake.connect(s), view.batch_source, ["BTC-USD"], tail="ticks"))
    assert not holds_nothing(store, clock)

    on_redis = feature_store(make_settings(online_store="redis", redis_url=redis_url))
    assert holds_nothing(on_redis, clock)
    # a key of another program's in the database: whether any product is there is not told by its size
    on_redis._get_provider().online_store._get_client(on_redis.config.online_store).set("theirs", 1)
    assert not holds_nothing(on_redis, clock)
