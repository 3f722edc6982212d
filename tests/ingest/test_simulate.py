"""The simulator: valid ticks for wire.sql, several products, regimes fitted to the recordings."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest

from ingest import simulate, wire
from tests.conftest import SHARED


def test_simulated_stream_parses_cleanly_and_is_time_ordered_per_product() -> None:
    cfg = simulate.SimConfig(n_ticks=5_000, products=("BTC-USD", "ETH-USD", "DOGE-USD"))
    lines = [line for _, line in simulate.generate(cfg)]
    con = duckdb.connect()
    wire.parse_lines(con, lines)
    assert con.sql("SELECT count(*) FROM parsed WHERE kind <> 'tick'").fetchone() == (0,)
    per = dict(con.sql("SELECT product_id, count(*) FROM parsed GROUP BY ALL").fetchall())
    assert sum(per.values()) == 5_000 and set(per) == {"BTC-USD", "ETH-USD", "DOGE-USD"}
    unordered = con.sql(
        "SELECT count(*) FROM (SELECT event_time < lag(event_time) OVER (PARTITION BY product_id ORDER BY sequence) AS back FROM parsed) WHERE back"
    ).fetchone()
    assert unordered == (0,)
    # bursts: some ticks share a timestamp
    assert con.sql("SELECT count(*) - count(DISTINCT (product_id, event_time)) FROM parsed").fetchone()[0] > 0


def test_fit_recovers_a_volatile_regime_from_the_recordings() -> None:
    fitted = simulate.fit([SHARED / "exchange"])
    assert fitted.volatile_rate > fitted.calm_rate > 0
    assert 0 < fitted.calm_sigma < 1e-3 and 0 < fitted.volatile_share < 0.5
    assert fitted.defaulted == ()


def test_a_fit_to_few_ticks_says_which_values_are_the_defaults(tmp_path: Path) -> None:
    """Five ticks give no calm-regime return nor a burst: those were the defaults, unsaid, printed as a repr."""
    recording = tmp_path / "five.ndjson"
    simulate.write(recording, simulate.SimConfig(n_ticks=5, products=("ETH-USD",), seed=3))
    fitted = simulate.fit([recording])
    defaults = simulate.Fitted()
    assert fitted.defaulted and "volatile_rate" not in fitted.defaulted
    for name in fitted.defaulted:
        assert getattr(fitted, name) == getattr(defaults, name)
    said = "\n".join(fitted.describe())
    assert said.count("(default: too few ticks to fit)") == len(fitted.defaulted), said
    assert "Fitted(" not in said and f"{fitted.volatile_rate:.2f} ticks/s" in said
    assert "(default" not in "\n".join(simulate.fit([SHARED / "exchange"]).describe())


def test_fitting_to_no_ticks_says_so(tmp_path: Path) -> None:
    """A folder without recordings, or a file without ticks, was fitted silently: every default kept."""
    (tmp_path / "notes.ndjson").write_text('{"type": "subscriptions", "channels": []}\n')
    for where in (tmp_path / "empty", tmp_path):
        where.mkdir(exist_ok=True)
        with pytest.raises(ValueError, match=f"no ticks to fit to in {where} "):
            simulate.fit([where])


def test_two_runs_with_different_starts_never_share_a_sequence() -> None:
    def sequences(start: float) -> set[tuple[str, int]]:
        cfg = simulate.SimConfig(n_ticks=9_000, start=start)
        return {(product, json.loads(line)["sequence"]) for product, line in simulate.generate(cfg)}

    # a second apart, 3,000 ticks a product: with a thousand sequences a second of start they shared 2,000
    a, b = sequences(1_700_000_000.0), sequences(1_700_000_001.0)
    assert len(a) == len(b) == 9_000 and not a & b


def test_a_run_without_a_start_ends_in_the_past_however_many_ticks_it_has() -> None:
    """It started a day ago: 1.5 million ticks ran hours into the future, and `tickstore status` said
    their newest was "-20917 s ago". A run that fits in a day still starts a day ago."""
    import pyarrow.compute as pc

    slow = simulate.Fitted(calm_rate=0.01, volatile_rate=0.01, burst_share=0.0)  # 1,000 ticks: ~28 h
    before = time.time()
    long = simulate.tick_table(simulate.SimConfig(n_ticks=3_000, fitted=slow))
    first, last = (pc.min(long["event_time"]).value / 1e6, pc.max(long["event_time"]).value / 1e6)
    assert last - first > 86_400 and before - 180 < last < time.time() - 59  # about a minute old
    short = simulate.tick_table(simulate.SimConfig(n_ticks=3_000))
    first = pc.min(short["event_time"]).value / 1e6
    assert before - 86_402 < first < time.time() - 86_400 + 60  # a day ago, as before
