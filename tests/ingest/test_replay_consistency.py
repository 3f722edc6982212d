"""Features recomputed from the raw NDJSON equal the features computed from the lake (via Kafka + sink)."""

from __future__ import annotations

import pytest

from ingest import replay
from ingest.archive import load_ticks
from ingest.sink import Sink
from tests.conftest import REPO, SHARED
from tickstore import lake
from tickstore.settings import Settings

RECORDINGS = [SHARED / "exchange", SHARED / "advanced_trade" / "btc-eth-usd_2026-04-03_no-sizes.ndjson"]


@pytest.mark.kafka
@pytest.mark.slow
def test_features_from_the_archive_equal_features_from_the_lake(kafka_settings: Settings) -> None:
    replay.replay(kafka_settings, RECORDINGS)
    Sink(kafka_settings, until_idle=True).run()
    lake_con = lake.connect(kafka_settings, create=False)
    file_con = load_ticks(RECORDINGS)
    for view in ("ticks_10s", "ticks_60s", "ticks_300s"):
        sql = f"SELECT DISTINCT * FROM ({(REPO / 'sql' / f'{view}.sql').read_text()}) ORDER BY ALL"
        from_lake = lake_con.sql(sql).fetchall()
        assert len(from_lake) > 5_000
        assert from_lake == file_con.sql(sql).fetchall(), view  # exactly: same parse, dedupe and SQL
