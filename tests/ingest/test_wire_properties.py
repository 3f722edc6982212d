"""wire.sql on generated messages: every one accounted for, no tick with a value its message does not hold."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import wire
from tests.ingest.test_wire import AT_TICKER, EX

PRODUCT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
PLAUSIBLE = st.sampled_from(
    [
        "103472.28",
        "0",
        "-1",
        "1.5",
        "1e3",
        "0.000000001",
        "NaN",
        "",
        " 7",
        "2025-11-12T07:20:11.615272Z",
        "99999-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "BTC-USD",
        "btc usd",
        "buy",
        "sell",
        "ticker",
        "update",
    ]
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | PLAUSIBLE,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with a field or two dropped or given another JSON value (or a plausible string): one
    wrong field at a time is what reaches the checks past the first."""
    out = dict(base)
    for key in draw(st.lists(st.sampled_from(sorted(base)), max_size=2, unique=True)):
        if draw(st.booleans()):
            del out[key]
        else:
            out[key] = draw(PLAUSIBLE | JSON)
    return out


@st.composite
def envelope(draw: st.DrawFn) -> dict[str, Any]:
    """An Advanced Trade message, its envelope and tickers mutated."""
    tickers = draw(st.lists(mutated(AT_TICKER), max_size=3))
    message = {
        "channel": "ticker",
        "timestamp": "2026-04-05T22:35:14.009945409Z",
        "sequence_num": 2,
        "events": [{"type": "update", "tickers": tickers}],
    }
    return draw(mutated(message)) | {"channel": "ticker"}


MESSAGE = st.one_of(
    mutated(EX).map(json.dumps),
    envelope().map(json.dumps),
    JSON.map(json.dumps),
    st.text(max_size=40),
).map(str.encode) | st.binary(max_size=40)


def rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[Any, ...]]:
    return sorted(con.sql(f"SELECT * FROM {table}").fetchall(), key=repr)  # noqa: S608 - fixed names


def source_of(message: Any, ticker_index: int) -> dict[str, Any]:
    """The fields a tick was parsed from: the message itself, or its ticker (Advanced Trade)."""
    if message.get("channel") != "ticker":
        return message
    tickers = [t for e in message["events"] for t in (e.get("tickers") or [])]
    t = tickers[ticker_index]
    return {
        "product_id": t.get("product_id"),
        "price": t.get("price"),
        "best_bid": t.get("best_bid"),
        "best_ask": t.get("best_ask"),
        "best_bid_size": t.get("best_bid_quantity"),
        "best_ask_size": t.get("best_ask_quantity"),
        "sequence": message.get("sequence_num"),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(MESSAGE, min_size=1, max_size=8))
def test_every_message_is_a_tick_control_or_reject_and_ticks_hold_only_what_was_sent(
    messages: list[bytes],
) -> None:
    batch = wire.lines_table(messages)
    planned = duckdb.connect()
    planned.execute("SET TimeZone = 'UTC'")
    wire.parse(planned, batch)
    # the stream's way (planned once, on an empty batch) gives the very same rows
    prepared = duckdb.connect()
    prepared.execute("SET TimeZone = 'UTC'")
    wire.PreparedParser(prepared)(batch)
    assert rows(planned, "parsed") == rows(prepared, "parsed")
    assert rows(planned, "parsed_rejects") == rows(prepared, "parsed_rejects")

    seen = planned.sql("SELECT DISTINCT src_offset FROM parsed").fetchall()
    assert sorted(o for (o,) in seen) == list(range(len(messages)))  # none lost
    for offset, reason, payload in planned.sql(
        "SELECT src_offset, reason, payload FROM parsed_rejects"
    ).fetchall():
        assert reason, offset  # a reject says why ...
        assert payload == messages[offset].rstrip(b"\r\n")  # ... and keeps the bytes as sent

    ticks = planned.sql(
        "SELECT src_offset, ticker_index, product_id, event_time, sequence, side, price, best_bid, "
        "best_ask, best_bid_size, best_ask_size FROM parsed WHERE kind = 'tick'"
    ).fetchall()
    for offset, index, product, when, sequence, side, price, bid, ask, bid_size, ask_size in ticks:
        sent = source_of(json.loads(messages[offset]), index)
        assert product == sent["product_id"] and PRODUCT_ID.fullmatch(product), (product, sent)
        assert 2000 <= when.year < 2100
        assert price > 0 and (bid is None or ask is None or 0 < bid <= ask)
        assert (bid_size is None or bid_size >= 0) and (ask_size is None or ask_size >= 0)
        assert side in (None, "buy", "sell")
        # a value sent as text is kept exactly, never rounded (numbers sent as JSON numbers are
        # DuckDB's to print; they are checked by sign above)
        for column, value in (("price", price), ("best_bid", bid), ("best_ask", ask)):
            if isinstance(sent.get(column), str):
                assert value == Decimal(sent[column].strip()), (column, sent[column], value)
        if isinstance(sent.get("sequence"), int):
            assert sequence == sent["sequence"]
        elif isinstance(sent.get("sequence"), str):
            assert sequence == int(sent["sequence"].strip())
