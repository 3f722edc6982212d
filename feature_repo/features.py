"""tickstore's Feast definitions: the product entity, one feature view per `sql/*.sql`, the model's service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml
from feast import Entity, FeatureService, FeatureView, Project, ValueType
from feast.types import Float64, Int64

from tickstore_feast import DuckDBSource

REPO = Path(__file__).resolve().parent
SQL = REPO.parent / "sql"

# The project as feature_store.yaml names it (the one place it is set). Without a Project object here,
# `feast apply` and `feast plan` made one from the yaml all the same, printing "No project found in the
# repository. Using project name ..." at every run.
# (No description: one here would be a change to the project Feast registered without it.)
project = Project(name=yaml.safe_load((REPO / "feature_store.yaml").read_text())["project"])

product = Entity(
    name="product",
    join_keys=["product_id"],
    value_type=ValueType.STRING,
    description="A Coinbase product, e.g. BTC-USD.",
)


def tick_window_view(seconds: int) -> FeatureView:
    """The feature view defined by sql/ticks_<seconds>s.sql.

    TTL = the window: a row older than that describes a window that no longer overlaps the present.
    """
    suffix = f"{seconds}s"
    # ticks sharing an event time share a frame, so their rows are equal (tests/feature_repo)
    # its lookback (how far back a row's window reads) is the file's '-- lookback:' header line
    source = DuckDBSource(sql_file=SQL / f"ticks_{suffix}.sql", ties_equal=True)
    doubles = [
        "ret_mean",
        "ret_std",
        "realized_var",
        "spread_mean",
        "spread_bps_mean",
        "trade_intensity",
        "imbalance_mean",
        "price_range",
    ]
    return FeatureView(
        name=f"ticks_{suffix}",
        entities=[product],
        ttl=timedelta(seconds=seconds),
        # each field's description is the comment beside its column in the SQL
        schema=[source.field(f"{f}_{suffix}", Float64) for f in doubles]
        + [source.field(f"tick_count_{suffix}", Int64)],
        source=source,
        online=True,
        description=f"Tick features over the last {seconds} s, one row per tick (sql/ticks_{suffix}.sql).",
    )


ticks_10s = tick_window_view(10)
ticks_60s = tick_window_view(60)
ticks_300s = tick_window_view(300)


def tick_clock_view() -> FeatureView:
    """The feature view defined by sql/tick_clock.sql: not a model input; the scorer reads it to
    know, to the microsecond, how old the window views are."""
    source = DuckDBSource(sql_file=SQL / "tick_clock.sql", ties_equal=True)
    return FeatureView(
        name="tick_clock",
        entities=[product],
        ttl=timedelta(0),
        schema=[source.field("event_time_us", Int64)],
        source=source,
        online=True,
        description="Event time of the product's latest tick, in microseconds (sql/tick_clock.sql).",
    )


tick_clock = tick_clock_view()

volatility_model = FeatureService(
    name="volatility_model",
    features=[ticks_10s, ticks_60s, ticks_300s],
    description="Everything the 60 s volatility-spike models read.",
)
