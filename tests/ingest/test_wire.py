"""wire.sql: both Coinbase wire formats -> normalized ticks; every reject reason; window-free edges."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from decimal import Decimal

import duckdb
import pytest

from ingest import wire
from tests.conftest import SHARED

EX = {
    "type": "ticker",
    "sequence": 115498669093,
    "product_id": "BTC-USD",
    "price": "103472.28",
    "volume_24h": "5461.74127717",
    "best_bid": "103472.27",
    "best_bid_size": "0.04145138",
    "best_ask": "103472.28",
    "best_ask_size": "0.02560996",
    "side": "buy",
    "time": "2025-11-12T07:20:11.615272Z",
    "trade_id": 900701309,
    "last_size": "0.00068754",
}


def at(
    tickers: list[dict], ts: str = "2026-04-05T22:35:14.009945409Z", seq: int = 2, kind: str = "update"
) -> dict:
    return {
        "channel": "ticker",
        "timestamp": ts,
        "sequence_num": seq,
        "events": [{"type": kind, "tickers": tickers}],
    }


AT_TICKER = {
    "type": "ticker",
    "product_id": "BTC-USD",
    "price": "67468.26",
    "volume_24_h": "3057.53218222",
    "best_bid": "67469.15",
    "best_ask": "67469.62",
    "best_bid_quantity": "0.00379643",
    "best_ask_quantity": "0.16458201",
}


@pytest.fixture(params=["planned per batch", "prepared once"])
def parse(request: pytest.FixtureRequest) -> Callable[..., duckdb.DuckDBPyConnection]:
    """wire.sql both ways it runs: planned for each batch (the sink) and prepared once (the stream)."""

    def run(*messages: dict | bytes | str) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        lines = [
            m if isinstance(m, bytes) else (m if isinstance(m, str) else json.dumps(m)).encode()
            for m in messages
        ]
        if request.param == "prepared once":
            parser = wire.PreparedParser(con)  # planned on an empty batch
            parser(wire.lines_table([json.dumps(AT_TICKER).encode()]))  # and used on one unlike these
            parser(wire.lines_table(lines))
        else:
            wire.parse_lines(con, lines)
        return con

    return run


def ticks(con: duckdb.DuckDBPyConnection) -> list[dict]:
    rel = con.sql("SELECT * FROM parsed WHERE kind = 'tick' ORDER BY src_offset, ticker_index")
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def reasons(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        r[0]
        for r in con.sql("SELECT reason FROM parsed_rejects ORDER BY src_offset, ticker_index").fetchall()
    ]


def test_exchange_ticker_parses_exactly(parse: Callable[..., duckdb.DuckDBPyConnection]) -> None:
    [t] = ticks(parse(EX))
    assert t["product_id"] == "BTC-USD" and t["feed"] == "exchange"
    assert t["event_time"].isoformat() == "2025-11-12T07:20:11.615272+00:00"
    assert t["sequence"] == 115498669093 and t["trade_id"] == 900701309 and t["side"] == "buy"
    assert t["price"] == Decimal("103472.28") and t["last_size"] == Decimal("0.00068754")
    assert t["best_bid_size"] == Decimal("0.04145138") and t["volume_24h"] == Decimal("5461.74127717")


def test_advanced_trade_several_tickers_per_event_and_nanoseconds(
    parse: Callable[..., duckdb.DuckDBPyConnection],
) -> None:
    eth = dict(AT_TICKER, product_id="ETH-USD", price="2055.05", best_bid="2055.04", best_ask="2055.06")
    [btc, e] = ticks(parse(at([AT_TICKER, eth])))
    assert (btc["product_id"], e["product_id"]) == ("BTC-USD", "ETH-USD")
    assert (btc["ticker_index"], e["ticker_index"]) == (0, 1)
    # nanoseconds are truncated to the microsecond the lake stores
    assert btc["event_time"].isoformat() == "2026-04-05T22:35:14.009945+00:00"
    assert btc["best_bid_size"] == Decimal("0.00379643") and btc["trade_id"] is None


def test_missing_book_sizes_are_null_not_zero(parse: Callable[..., duckdb.DuckDBPyConnection]) -> None:
    bare = {
        k: v
        for k, v in AT_TICKER.items()
        if k not in ("best_bid_quantity", "best_ask_quantity", "volume_24_h")
    }
    [t] = ticks(parse(at([bare])))
    assert t["best_bid_size"] is None and t["best_ask_size"] is None and t["volume_24h"] is None
    assert t["best_bid"] == Decimal("67469.15")


def test_control_messages_are_counted_not_rejected(parse: Callable[..., duckdb.DuckDBPyConnection]) -> None:
    con = parse(
        {"type": "subscriptions", "channels": [{"name": "ticker", "product_ids": ["BTC-USD"]}]},
        {"type": "heartbeat", "sequence": 1, "product_id": "BTC-USD"},
        {"channel": "subscriptions", "timestamp": "2026-04-05T22:35:13Z", "events": []},
        {"channel": "heartbeats", "timestamp": "2026-04-05T22:35:13Z", "events": []},
        {"type": "status", "products": [], "currencies": []},  # the Exchange's status channel
    )
    assert con.sql("SELECT count(*) FROM parsed WHERE kind = 'control'").fetchone() == (5,)
    assert reasons(con) == []


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ('{"type":"ticker","price":', "invalid JSON"),
        (b"\xff\xfe{}", "invalid UTF-8 at byte 0"),
        ("[1, 2, 3]", "unknown message shape"),
        (
            {"type": "l2update"},
            "not a ticker message: Exchange message type l2update (tickstore reads type ticker)",
        ),
        ({"type": "match", "product_id": "BTC-USD"}, "not a ticker message: Exchange message type match"),
        (
            {"channel": "market_trades", "timestamp": "2026-04-05T22:35:14Z", "events": [{"trades": []}]},
            "not a ticker message: Advanced Trade channel market_trades (tickstore reads channel ticker)",
        ),
        ({"product_id": "BTC-USD", "price": "1"}, "unknown message shape"),  # neither a type nor a channel
        (dict(EX, price="NaN"), "price is not an exact decimal (at most 8 places, below 1e10): NaN"),
        (dict(EX, price="1e400"), "price is not an exact decimal (at most 8 places, below 1e10): 1e400"),
        (dict(EX, price=True), "price is not an exact decimal"),
        (dict(EX, price={"x": 1}), "price is not an exact decimal"),
        (dict(EX, price="-5"), "non-positive price"),
        (dict(EX, best_bid_size="-0.1"), "negative size"),
        (dict(EX, best_bid="103472.29", best_ask="103472.28"), "crossed book"),
        ({k: v for k, v in EX.items() if k != "product_id"}, "missing field: product_id"),
        ({k: v for k, v in EX.items() if k != "time"}, "missing field: time"),
        (dict(EX, time="yesterday"), "unparseable time: yesterday"),
        (dict(EX, sequence="abc"), "unparseable sequence: abc"),
        (dict(EX, sequence=1.5), "unparseable sequence: 1.5"),  # not rounded to 2
        (dict(EX, trade_id="7.0"), "unparseable trade_id: 7.0"),
        (dict(EX, product_id=["BTC-USD"]), 'product_id is not a string: ["BTC-USD"]'),
        (dict(EX, product_id=False), "product_id is not a string: false"),  # it was a product "false"
        (dict(EX, product_id="BTC USD"), "product_id is not a product id (a letter or digit, then"),
        (dict(EX, time="99999-11-12T07:20:11Z"), "time outside the years 2000-2099: 99999-11-12"),
        (dict(EX, time="1970-01-01T00:00:00Z"), "time outside the years 2000-2099: 1970-01-01"),
        (dict(EX, side=["buy"]), 'side is neither buy nor sell: ["buy"]'),
        (dict(EX, product_id=""), "missing field: product_id"),
        (dict(EX, product_id=None), "missing field: product_id"),
        (dict(EX, product_id="-BTC"), "product_id is not a product id"),  # a letter or digit first
        (dict(EX, product_id="B" * 65), "product_id is not a product id"),  # 64 at most
        (dict(EX, time="2100-01-01T00:00:00Z"), "time outside the years 2000-2099: 2100-01-01T00:00:00Z"),
        (dict(EX, time="1999-12-31T23:59:59.999999Z"), "time outside the years 2000-2099: 1999-12-31"),
        (dict(EX, price="0"), "non-positive price: 0"),
        (dict(EX, best_bid="0"), "non-positive best bid/ask"),
        (dict(EX, best_ask="0"), "non-positive best bid/ask"),  # before the crossed book it also is
        (dict(EX, best_ask_size="-0.1"), "negative size"),
        (dict(EX, last_size="-1"), "negative size"),
        (dict(EX, volume_24h="-1"), "negative size"),
        (dict(EX, best_bid="x"), "best_bid is not an exact decimal (at most 8 places, below 1e10): x"),
        (dict(EX, best_ask="x"), "best_ask is not an exact decimal (at most 8 places, below 1e10): x"),
        (dict(EX, best_bid_size="x"), "best_bid_size is not an exact decimal"),
        (dict(EX, best_ask_size="x"), "best_ask_size is not an exact decimal"),
        (dict(EX, volume_24h="x"), "volume_24h is not an exact decimal (at most 8 places): x"),
        (dict(EX, price="1.123456789"), "price is not an exact decimal"),  # 9 places: no rounding
        (dict(EX, last_size="1e-9"), "last_size is not an exact decimal"),  # an exponent, 9 places
        # volume_24h's wide decimal: 9 places, as digits or as an exponent
        (dict(EX, volume_24h="12345678901.123456789"), "volume_24h is not an exact decimal"),
        (dict(EX, volume_24h="12345678901e-9"), "volume_24h is not an exact decimal"),
        (  # names are cut at 64 characters
            {"channel": "c" * 100, "timestamp": "2026-04-05T22:35:14Z", "events": []},
            f"not a ticker message: Advanced Trade channel {'c' * 64} (tickstore reads channel ticker)",
        ),
        (
            {"type": "t" * 100},
            f"not a ticker message: Exchange message type {'t' * 64} (tickstore reads type ticker)",
        ),
        (
            {"channel": "ticker", "timestamp": "2026-04-05T22:35:14Z", "events": []},
            "ticker message without tickers",
        ),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(
    parse: Callable[..., duckdb.DuckDBPyConnection], message: dict | str | bytes, reason: str
) -> None:
    con = parse(EX, message)
    assert len(ticks(con)) == 1  # the good neighbour still parses
    [got] = reasons(con)
    assert got.startswith(reason)
    payload = con.sql("SELECT payload FROM parsed_rejects").fetchone()[0]
    raw = (
        message
        if isinstance(message, bytes)
        else (message if isinstance(message, str) else json.dumps(message)).encode()
    )
    assert payload == raw


def test_one_bad_ticker_of_several_rejects_only_that_ticker(
    parse: Callable[..., duckdb.DuckDBPyConnection],
) -> None:
    con = parse(at([AT_TICKER, dict(AT_TICKER, product_id="ETH-USD", price="oops")]))
    assert [t["product_id"] for t in ticks(con)] == ["BTC-USD"]
    assert con.sql("SELECT ticker_index, reason FROM parsed_rejects").fetchall() == [
        (1, "price is not an exact decimal (at most 8 places, below 1e10): oops")
    ]


def test_decimals_are_exact_or_rejected_never_rounded(
    parse: Callable[..., duckdb.DuckDBPyConnection],
) -> None:
    con = parse(
        dict(EX, last_size="0.000000000123456789"),  # 18 places: would need rounding
        dict(EX, sequence=2, price="1.5e4", volume_24h="123456789012345.12345678"),  # exponent; wide volume
        dict(EX, sequence=3, price="12345678901.5"),  # >= 1e10
        dict(EX, sequence=4, price="103472.28000000000"),  # trailing zeros lose nothing
    )
    t2, t4 = ticks(con)
    assert t2["price"] == Decimal("15000") and t2["volume_24h"] == Decimal("123456789012345.12345678")
    assert t4["price"] == Decimal("103472.28")
    assert [r.split(":")[0] for r in reasons(con)] == [
        "last_size is not an exact decimal (at most 8 places, below 1e10)",
        "price is not an exact decimal (at most 8 places, below 1e10)",
    ]


def test_dedupe_key_exchange_sequence_survives_reconnects(
    parse: Callable[..., duckdb.DuckDBPyConnection],
) -> None:
    # Exchange `sequence` is per product and global: the same sequence is the same tick.
    a, b, c = ticks(parse(EX, dict(EX, price="103472.29"), dict(EX, sequence=EX["sequence"] + 1)))
    assert a["tick_id"] == b["tick_id"] != c["tick_id"]


def test_values_at_the_edges_of_each_check_are_ticks(parse: Callable[..., duckdb.DuckDBPyConnection]) -> None:
    edges = [
        dict(EX, sequence=1, product_id="B" * 64),  # the longest product id
        dict(EX, sequence=2, product_id="1INCH-USD"),  # a digit first
        dict(EX, sequence=3, time="2000-01-01T00:00:00Z"),  # the first and last microsecond of the range
        dict(EX, sequence=4, time="2099-12-31T23:59:59.999999Z"),
        dict(EX, sequence=5, best_bid_size="0", best_ask_size="0", last_size="0", volume_24h="0"),
        dict(EX, sequence=6, best_bid="103472.28", best_ask="103472.28"),  # a locked book is not crossed
        dict(EX, sequence=7, price="0.00000001", last_size="1.5E-7"),  # 8 places, as digits or exponent
    ]
    con = parse(*edges)
    assert reasons(con) == []
    got = ticks(con)
    assert [t["sequence"] for t in got] == [1, 2, 3, 4, 5, 6, 7]
    assert got[0]["product_id"] == "B" * 64 and got[1]["product_id"] == "1INCH-USD"
    assert got[2]["event_time"].isoformat() == "2000-01-01T00:00:00+00:00"
    assert got[3]["event_time"].isoformat() == "2099-12-31T23:59:59.999999+00:00"
    assert (got[4]["best_bid_size"], got[4]["volume_24h"]) == (Decimal(0), Decimal(0))
    assert got[6]["price"] == Decimal("0.00000001") and got[6]["last_size"] == Decimal("0.00000015")


def test_dedupe_key_exchange_sequence_is_per_product(parse: Callable[..., duckdb.DuckDBPyConnection]) -> None:
    btc, eth = ticks(parse(EX, dict(EX, product_id="ETH-USD")))
    assert btc["tick_id"] != eth["tick_id"]


@pytest.mark.parametrize(
    "change",
    [
        {"ts": "2026-04-05T22:35:14.009946Z"},
        {"product_id": "ETH-USD"},
        {"price": "67468.27"},
        {"best_bid": "67469.14"},
        {"best_bid_quantity": "0.00379644"},
        {"best_ask": "67469.63"},
        {"best_ask_quantity": "0.16458202"},
        {"volume_24_h": "3057.53218223"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_dedupe_key_advanced_trade_is_every_field_of_the_ticker_and_its_time(
    parse: Callable[..., duckdb.DuckDBPyConnection], change: dict[str, str]
) -> None:
    change = dict(change)  # each parse fixture's run gets the same dict
    ts = change.pop("ts", "2026-04-05T22:35:14.009945Z")
    first, other = ticks(
        parse(at([AT_TICKER], ts="2026-04-05T22:35:14.009945Z"), at([dict(AT_TICKER, **change)], ts=ts))
    )
    assert first["tick_id"] != other["tick_id"]


def test_rejects_say_which_ticker_or_none_for_a_whole_message(
    parse: Callable[..., duckdb.DuckDBPyConnection],
) -> None:
    con = parse(dict(EX, price="oops"), '{"type":', at([AT_TICKER, dict(AT_TICKER, price="oops")]))
    assert con.sql("SELECT src_offset, ticker_index FROM parsed_rejects ORDER BY src_offset").fetchall() == [
        (0, 0),  # an Exchange message is one ticker: the first
        (1, None),  # not parsed at all: no ticker to name
        (2, 1),
    ]


def test_an_event_without_tickers_leaves_the_others_tickers(
    parse: Callable[..., duckdb.DuckDBPyConnection],
) -> None:
    message = at([AT_TICKER])
    message["events"] = [{"type": "snapshot"}, {"type": "update", "tickers": None}, *message["events"]]
    con = parse(message)
    assert [t["product_id"] for t in ticks(con)] == ["BTC-USD"] and reasons(con) == []


def test_dedupe_key_advanced_trade_does_not_trust_sequence_num(
    parse: Callable[..., duckdb.DuckDBPyConnection],
) -> None:
    # sequence_num restarts per connection: two recordings both starting at 0 are different ticks...
    first = at([AT_TICKER], ts="2026-04-05T22:35:14.009945409Z", seq=0)
    other = at([dict(AT_TICKER, price="67470.00")], ts="2026-04-03T22:13:41.421126Z", seq=0)
    # ...while a re-delivered message (same content, same receive time) is the same tick.
    again = at([AT_TICKER], ts="2026-04-05T22:35:14.009945409Z", seq=7)
    t1, t2, t3 = ticks(parse(first, other, again))
    assert t1["tick_id"] != t2["tick_id"]
    assert t1["tick_id"] == t3["tick_id"]


def test_prepared_parser_equals_a_plan_per_batch_on_recordings_in_batches_of_every_size() -> None:
    # One PreparedParser reused batch after batch, as the stream does, against the sink's per-batch plan,
    # on real messages of both feeds with bad ones mixed in.
    lines: list[bytes] = []
    for path in (
        SHARED / "exchange" / "btc-usd_2025-11-12_to_14.ndjson",
        SHARED / "advanced_trade" / "btc-eth-usd_2026-04-03_no-sizes.ndjson",
    ):
        with path.open("rb") as f:
            lines += [next(f) for _ in range(600)]
    bad = [b"\xff{", b'{"type":', json.dumps(dict(EX, price="1e400")).encode(), b'{"type":"heartbeat"}']
    lines = [x for i, line in enumerate(lines) for x in ([line, bad[i % 4]] if i % 97 == 0 else [line])]
    planned, prepared = duckdb.connect(), duckdb.connect()
    for con in (planned, prepared):
        con.execute("SET TimeZone = 'UTC'")
    parser = wire.PreparedParser(prepared)
    start, batches, compared = 0, 0, {"parsed": 0, "parsed_rejects": 0}
    for size in itertools.cycle([1, 7, 250, 2, 500, 40]):
        if start >= len(lines):
            break
        table = wire.lines_table(lines[start : start + size])
        wire.parse(planned, table)
        parser(table)
        for name in ("parsed", "parsed_rejects"):
            rows = prepared.sql(f"SELECT * FROM {name} ORDER BY ALL").fetchall()  # noqa: S608 - fixed names
            assert rows == planned.sql(f"SELECT * FROM {name} ORDER BY ALL").fetchall(), (name, start)  # noqa: S608
            compared[name] += len(rows)
        start += size
        batches += 1
    # the comparison saw every message: ticks and rejects, not empty tables
    assert batches > 10 and compared["parsed"] >= 1200 and compared["parsed_rejects"] >= 6
