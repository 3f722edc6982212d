"""A lake-table DuckDBSource: offline_write_batch appends, created timestamps break ties."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, ValueType
from feast.types import Float64

from tests.tickstore_feast.conftest import T0
from tickstore import lake
from tickstore.settings import Settings
from tickstore_feast import DuckDBSource
from tickstore_feast.config import repo_config


@pytest.mark.parametrize("ties_equal", [False, True])
def test_write_batch_then_created_timestamp_breaks_ties(
    make_settings: Callable[..., Settings], ties_equal: bool
) -> None:
    """Of rows tied on event time the one created last serves, also where the source declares its
    ties equal: rows written after `apply` checked that are not, and the created timestamp says which."""
    s = make_settings()
    con = lake.connect(s)
    con.execute("CREATE TABLE scores (product_id VARCHAR, ts TIMESTAMPTZ, created TIMESTAMPTZ, score DOUBLE)")
    con.close()
    product = Entity(name="product", join_keys=["product_id"], value_type=ValueType.STRING)
    view = FeatureView(
        name="scores",
        entities=[product],
        ttl=timedelta(minutes=5),
        schema=[Field(name="score", dtype=Float64)],
        source=DuckDBSource(
            table="scores", timestamp_field="ts", created_timestamp_column="created", ties_equal=ties_equal
        ),
    )
    store = FeatureStore(config=repo_config(s))
    store.apply([product, view])
    at = T0 + timedelta(seconds=10)
    rows = pa.Table.from_pandas(
        pd.DataFrame(
            {
                "product_id": ["A", "A", "A"],
                "ts": [at, at, at + timedelta(seconds=5)],
                "created": [T0 + timedelta(seconds=30), T0 + timedelta(seconds=20), T0],
                "score": [1.0, 2.0, 3.0],
            }
        ),
        preserve_index=False,
    )
    store.write_to_offline_store("scores", rows.to_pandas())
    df = store.get_historical_features(
        entity_df=pd.DataFrame(
            {"product_id": ["A", "A"], "event_timestamp": [at, at + timedelta(seconds=5)]}
        ),
        features=["scores:score"],
    ).to_df()
    # at 10 s two rows tie on event time: the one created last (score 1.0) wins
    assert df["score"].tolist() == [1.0, 3.0]


def test_a_sql_source_cannot_be_written(make_settings: Callable[..., Settings]) -> None:
    from tickstore_feast.repo import definitions

    s = make_settings()
    lake.connect(s).close()
    store = FeatureStore(config=repo_config(s))
    d = definitions()
    store.apply([d.product, d.ticks_60s])
    from tickstore_feast.offline_store import DuckDBOfflineStore

    with pytest.raises(ValueError, match="only table sources can be written"):
        DuckDBOfflineStore.offline_write_batch(
            store.config, d.ticks_60s, pa.table({"product_id": ["A"]}), None
        )


def test_a_sql_source_must_say_how_far_back_its_windows_read(tmp_path: Path) -> None:
    from tests.conftest import REPO

    # left out, lookback was 0: rows near a training set's start got windows over part of their ticks
    bare = tmp_path / "bare_60s.sql"
    bare.write_text("-- bare_60s: no lookback line\nSELECT * FROM ticks\n")
    with pytest.raises(ValueError, match=r"sql_file=bare_60s.sql\) needs a lookback.*'-- lookback: 60 s'"):
        DuckDBSource(sql_file=bare)
    with pytest.raises(ValueError, match=r"query=\) needs a lookback"):
        DuckDBSource(name="q", query="SELECT * FROM ticks")
    assert DuckDBSource(sql_file=bare, lookback=timedelta(seconds=60)).lookback == timedelta(seconds=60)
    assert DuckDBSource(name="q", query="SELECT 1", lookback=timedelta(0)).lookback == timedelta(0)
    assert DuckDBSource(table="scores").lookback == timedelta(0)  # a table is read as it is
    # sql/'s files say it in their header, read once: given again, it must agree
    assert DuckDBSource(sql_file=REPO / "sql" / "ticks_60s.sql").lookback == timedelta(seconds=60)
    assert DuckDBSource(sql_file=REPO / "sql" / "tick_clock.sql").lookback == timedelta(0)
    with pytest.raises(ValueError, match=r"lookback=.*but the SQL's header says '-- lookback: 60 s'"):
        DuckDBSource(sql_file=REPO / "sql" / "ticks_60s.sql", lookback=timedelta(seconds=30))


def test_a_sql_sources_fields_are_described_by_the_comments_beside_its_columns(tmp_path: Path) -> None:
    sql = tmp_path / "spread_60s.sql"
    sql.write_text(
        "-- spread_60s: the mean spread over 60 s\n-- lookback: 60 s\n"
        "SELECT\n    product_id,\n    event_time,\n    avg(spread) AS spread_mean,  -- mean ask - bid\n"
        "    count(*) AS n\nFROM ticks\n"
    )
    source = DuckDBSource(sql_file=sql)
    assert source.description == "The mean spread over 60 s"  # its header's first line
    assert DuckDBSource(sql_file=sql, description="mine").description == "mine"
    field = source.field("spread_mean", Float64)
    assert (field.name, field.dtype, field.description) == ("spread_mean", Float64, "mean ask - bid")
    # a file's column without its comment is refused, saying where to write it
    with pytest.raises(ValueError, match=r"spread_60s.sql has no comment beside column n .*`expr AS n,  -- "):
        source.field("n", Float64)
    # a query or a table may go without
    query = DuckDBSource(name="q", query=sql.read_text())
    assert query.field("n", Float64).description == "" and query.description == ""
    assert DuckDBSource(table="scores").field("score", Float64).description == ""
