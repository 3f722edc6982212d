"""`tickstore ingest simulate`: a synthetic Exchange-format ticker stream for load beyond the recordings.

Prices follow a two-regime (calm / volatile) random walk in log space; ticks arrive as a Poisson
process whose rate switches with the regime, with bursts of identical timestamps. The rates, the
per-tick volatility of each regime and the spread are fitted to recordings by :func:`fit`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from ingest import kafka, replay, wire
from tickstore import lake
from tickstore.settings import Settings

START_PRICES = {"BTC-USD": 90_000.0, "ETH-USD": 3_000.0, "SOL-USD": 150.0, "DOGE-USD": 0.15}


@dataclass(frozen=True)
class Fitted:
    """Stream statistics; the defaults are `fit(../shared/data/coinbase)` (rounded), BTC-dominated."""

    calm_rate: float = 3.05  # ticks per second in the calm regime
    volatile_rate: float = 7.73  # ... and in the busiest 10% of seconds
    calm_sigma: float = 1.53e-5  # std of the mid-price log return per tick, calm
    volatile_sigma: float = 2.99e-5  # ... volatile
    volatile_share: float = 0.157  # share of seconds in the volatile regime
    spread_bps: float = 0.00147  # median spread in basis points (BTC trades at a one-cent spread)
    burst_share: float = 0.042  # share of ticks sharing the previous tick's timestamp
    # what :func:`fit` could not measure (too few ticks or returns) and took from the defaults
    defaulted: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """The fit for reading, a line a regime, each value the recordings did not give marked."""

        def v(name: str, text: str) -> str:
            return f"{text} (default: too few ticks to fit)" if name in self.defaulted else text

        return [
            f"calm regime: {v('calm_rate', f'{self.calm_rate:.2f} ticks/s')}, per-tick log-return std "
            f"{v('calm_sigma', f'{self.calm_sigma:.3g}')}",
            f"volatile regime: {v('volatile_rate', f'{self.volatile_rate:.2f} ticks/s')}, per-tick "
            f"log-return std {v('volatile_sigma', f'{self.volatile_sigma:.3g}')}, "
            f"{v('volatile_share', f'{self.volatile_share:.1%} of seconds')}",
            f"median spread {v('spread_bps', f'{self.spread_bps:.3g} bps')}; "
            f"{v('burst_share', f'{self.burst_share:.1%} of ticks')} share the previous tick's timestamp",
        ]


@dataclass(frozen=True)
class SimConfig:
    """What to simulate."""

    n_ticks: int = 1_000_000
    products: tuple[str, ...] = ("BTC-USD", "ETH-USD", "SOL-USD")
    seed: int = 7
    # epoch seconds; None: a day ago, or, where the ticks span more (1.5 million of them ~30 h), early
    # enough that the last is a minute old (they ran hours into the future: `status` said "-20917 s ago")
    start: float | None = None
    fitted: Fitted = Fitted()


def fit(paths: list[Path]) -> Fitted:
    """Fit regime rates, per-tick volatilities and spread to recorded ticks (parsed by wire.sql)."""
    con = duckdb.connect()
    lake.tune(con)  # no DuckDB progress bar on stdout
    con.execute("SET TimeZone = 'UTC'")
    files = replay.discover(paths)
    lines = [line for _, _, line in replay.iter_lines(files)]
    wire.parse_lines(con, lines)
    (ticks,) = con.execute("SELECT count(*) FROM parsed WHERE kind = 'tick'").fetchone() or (0,)
    if not ticks:  # fitted to nothing, every value was the default's, and that went unsaid
        named = ", ".join(str(p) for p in paths)
        raise ValueError(
            f"no ticks to fit to in {named} ({len(files):,} recording file(s), {len(lines):,} line(s)): "
            "name recordings of Coinbase ticker messages (.ndjson), e.g. ../shared/data/coinbase"
        )
    row = con.execute(
        """
        WITH t AS (
            SELECT product_id, event_time, ln((best_bid + best_ask)::DOUBLE / 2) AS lm,
                   ((best_ask - best_bid) / ((best_ask + best_bid) / 2))::DOUBLE * 1e4 AS spread_bps
            FROM parsed WHERE kind = 'tick' AND best_bid IS NOT NULL AND best_ask IS NOT NULL
        ),
        r AS (
            -- a return across a recording gap is not a tick-to-tick move
            SELECT *, CASE WHEN event_time - lag(event_time) OVER w < INTERVAL 60 SECOND
                           THEN lm - lag(lm) OVER w END AS ret, event_time = lag(event_time) OVER w AS same_ts,
                   date_trunc('second', event_time) AS sec
            FROM t WINDOW w AS (PARTITION BY product_id ORDER BY event_time)
        ),
        s AS (SELECT product_id, sec, count(*) AS n FROM r GROUP BY ALL),
        cut AS (SELECT quantile_cont(n, 0.9) AS q FROM s),
        busy AS (SELECT r.ret, s.n >= cut.q AS volatile FROM r JOIN s USING (product_id, sec), cut)
        SELECT
            avg(n) FILTER (n < q), avg(n) FILTER (n >= q),
            (SELECT stddev_samp(ret) FILTER (NOT volatile) FROM busy),
            (SELECT stddev_samp(ret) FILTER (volatile) FROM busy),
            avg((n >= q)::INT),
            (SELECT median(spread_bps) FROM t), (SELECT avg(same_ts::INT) FROM r)
        FROM s, cut
        """
    ).fetchone()
    assert row is not None
    defaults = asdict(Fitted())
    del defaults["defaulted"]
    measured = {
        name: float(v) for name, v in zip(defaults, row, strict=True) if v is not None and v == v and v > 0
    }
    return Fitted(**{**defaults, **measured}, defaulted=tuple(n for n in defaults if n not in measured))


def _paths(cfg: SimConfig, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """The run's start (epoch seconds) and, per product: (product, timestamps, bid, ask, sizes[3, n],
    buy side)."""
    f = cfg.fitted
    per_product = cfg.n_ticks // len(cfg.products)
    drawn = []
    for i, product in enumerate(cfg.products):
        n = per_product + (1 if i < cfg.n_ticks % len(cfg.products) else 0)
        volatile = _regimes(rng, n, f)
        rate = np.where(volatile, f.volatile_rate, f.calm_rate)
        gaps = rng.exponential(1.0 / rate)
        gaps[rng.random(n) < f.burst_share] = 0.0  # bursts: several ticks in one timestamp
        since = np.cumsum(gaps)  # seconds after the start
        sigma = np.where(volatile, f.volatile_sigma, f.calm_sigma)
        mid = START_PRICES.get(product, 100.0) * np.exp(np.cumsum(rng.normal(0.0, sigma)))
        tick = 0.01 if START_PRICES.get(product, 100.0) > 10 else 1e-6
        # At least one price increment wide, so rounding never crosses or locks the book.
        half = np.maximum(mid * f.spread_bps / 2e4 * rng.lognormal(0.0, 0.5, n), tick)
        decimals = 2 if tick == 0.01 else 6
        bid, ask = np.round(mid - half, decimals), np.round(mid + half, decimals)
        ask = np.maximum(ask, bid + tick)
        sizes = np.round(rng.lognormal(-3.0, 1.5, (3, n)), 8)
        drawn.append((product, since, bid, ask, sizes, rng.random(n) < 0.5))
    start = cfg.start
    if start is None:
        span = max((float(d[1][-1]) for d in drawn if len(d[1])), default=0.0)
        start = float(int(time.time()) - max(86_400, math.ceil(span) + 60))
    # microsecond timestamps, as the lake stores them
    return start, [(p, np.floor((start + t) * 1e6) / 1e6, b, a, z, y) for p, t, b, a, z, y in drawn]


def first_sequence(start: float) -> int:
    """Each product's first sequence number: runs started in different seconds never share one.

    A run has at most 10^9 ticks, so a billion sequences a second of start time keep runs apart (a
    thousand did not: a run of 20,000 ticks and one started a second later shared 5,667 a product).
    """
    return int(start) * 1_000_000_000


def tick_table(cfg: SimConfig) -> pa.Table:
    """The simulated stream as rows of the lake's ``ticks`` table, without Kafka or JSON (for feature
    benchmarks and tests: 10 million ticks take seconds, not minutes)."""
    start, paths = _paths(cfg, np.random.default_rng(cfg.seed))
    seq0 = first_sequence(start)
    parts = []
    for product, ts, bid, ask, sizes, buy in paths:
        n = len(ts)
        seq = seq0 + np.arange(n)
        parts.append(
            pa.table(
                {
                    "product_id": pa.array([product] * n, pa.string()),
                    "event_time": pa.array((ts * 1e6).astype("int64"), pa.int64()).cast(
                        pa.timestamp("us", tz="UTC")
                    ),
                    "feed": pa.array(["exchange"] * n, pa.string()),
                    "sequence": pa.array(seq, pa.int64()),
                    "tick_id": pa.array(seq.astype("uint64"), pa.uint64()),
                    "trade_id": pa.array(seq, pa.int64()),
                    "side": pa.array(np.where(buy, "buy", "sell"), pa.string()),
                    "last_size": pa.array(sizes[2], pa.float64()),
                    "price": pa.array(np.where(buy, ask, bid), pa.float64()),
                    "best_bid": pa.array(bid, pa.float64()),
                    "best_bid_size": pa.array(sizes[0], pa.float64()),
                    "best_ask": pa.array(ask, pa.float64()),
                    "best_ask_size": pa.array(sizes[1], pa.float64()),
                    "volume_24h": pa.array(np.full(n, 1000.0), pa.float64()),
                }
            )
        )
    return pa.concat_tables(parts)


def generate(cfg: SimConfig) -> Iterator[tuple[str, bytes]]:
    """Yield (product, Exchange ``ticker`` JSON line), ``cfg.n_ticks`` in all, in time order per product."""
    start, streams = _paths(cfg, np.random.default_rng(cfg.seed))
    seq0 = first_sequence(start)
    # Interleave products by time, as a live feed would.
    order = np.argsort(np.concatenate([s[1] for s in streams]), kind="stable")
    offsets = np.cumsum([0] + [len(s[1]) for s in streams])
    for k in order:
        p = int(np.searchsorted(offsets, k, side="right") - 1)
        j = int(k - offsets[p])
        product, ts, bid, ask, sizes, side = streams[p]
        decimals = 2 if bid[j] > 10 else 6
        yield product, _ticker(product, seq0 + j, ts[j], bid[j], ask[j], sizes[:, j], bool(side[j]), decimals)


def _regimes(rng: np.random.Generator, n: int, f: Fitted) -> np.ndarray:
    """A persistent two-state chain over ticks: runs of volatile ticks with the fitted share."""
    mean_run = 2_000.0
    p_leave_calm = f.volatile_share / ((1 - f.volatile_share) * mean_run)
    flips = rng.random(n) < np.where(np.arange(n) % 2 == 0, p_leave_calm, 1 / mean_run)
    return (np.cumsum(flips) % 2).astype(bool)


def _ticker(
    product: str, seq: int, ts: float, bid: float, ask: float, sizes: np.ndarray, buy: bool, decimals: int
) -> bytes:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"
    b, a = f"{bid:.{decimals}f}", f"{ask:.{decimals}f}"
    return json.dumps(
        {
            "type": "ticker",
            "sequence": seq,
            "product_id": product,
            "price": a if buy else b,
            "best_bid": b,
            "best_bid_size": f"{sizes[0]:.8f}",
            "best_ask": a,
            "best_ask_size": f"{sizes[1]:.8f}",
            "side": "buy" if buy else "sell",
            "time": stamp,
            "trade_id": seq,
            "last_size": f"{sizes[2]:.8f}",
            "volume_24h": "1000.0",
        },
        separators=(",", ":"),
    ).encode()


def publish(settings: Settings, cfg: SimConfig, progress: Callable[[int], None] | None = None) -> int:
    """Produce ``cfg.n_ticks`` simulated ticks to ``settings.topic_raw``; returns the count."""
    kafka.ensure_topics(settings)
    prod = kafka.producer(settings)
    n = 0
    for product, line in generate(cfg):
        while True:
            try:
                prod.produce(settings.topic_raw, value=line, key=product.encode())
                break
            except BufferError:
                prod.poll(0.05)
        n += 1
        if progress and n % 10_000 == 0:
            progress(10_000)
    prod.flush(120)
    return n


def write(path: Path, cfg: SimConfig) -> int:
    """Write the simulated stream to an NDJSON file instead of Kafka."""
    n = 0
    with open(path, "wb") as fh:
        for _, line in generate(cfg):
            fh.write(line + b"\n")
            n += 1
    return n
