"""The sink over a lake changed by hand: a `ticks` table changed stops it saying how to put it back (and
it never writes a value under its neighbour's name), a lake removed under it stops it saying so, and a
new lake whose consumer group has read the topic before is told what it will lack."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.sink import Sink
from tests.ingest.helpers import query
from tests.ingest.test_sink import per_product, publish_good
from tickstore.lake import LakeError
from tickstore.settings import Settings

pytestmark = pytest.mark.kafka


@pytest.mark.slow
def test_a_ticks_table_changed_by_hand_stops_the_sink_saying_how_to_put_it_back(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    from tests.cli.helpers import tickstore
    from tickstore import lake

    publish_good(kafka_settings, tmp_path / "first.ndjson", range(1, 31))
    assert Sink(kafka_settings, until_idle=True).run().total.ticks == 30
    con = lake.connect(kafka_settings, create=False)  # as DuckDB's own CLI on the lake would
    con.execute("ALTER TABLE ticks DROP COLUMN volume_24h")
    con.close()
    publish_good(kafka_settings, tmp_path / "second.ndjson", range(31, 61))
    # it bisected each batch down to single messages (~3 s each, retries included), filing every good
    # tick as a reject, and a stop waited for all of it
    with pytest.raises(LakeError, match="cannot write the lake's ticks table other than tickstore") as told:
        Sink(kafka_settings, until_idle=True).run()
    assert query(kafka_settings, "SELECT count(*) FROM ticks_rejected") == [(0,)]
    said = str(told.value)
    assert "(columns missing volume_24h)" in said and "tickstore sql --write" in said, said
    # the command it gives puts the table back (the user's transaction is checked at its COMMIT)
    command = said.split('tickstore sql --write "')[1].split('"')[0]
    tickstore(kafka_settings, "sql", "--write", command)
    again = Sink(kafka_settings, until_idle=True).run()
    assert (again.total.ticks, again.total.rejects) == (30, 0)
    assert per_product(kafka_settings) == {"SOL-USD": 60}


@pytest.mark.slow
def test_columns_renamed_by_hand_take_each_value_by_name_never_their_neighbours(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    from tickstore import lake

    lake.connect(kafka_settings, create=True).close()
    con = lake.connect(kafka_settings, create=False)  # as DuckDB's own CLI on the lake would
    for old, new in (("best_bid", "x"), ("best_ask", "best_bid"), ("x", "best_ask")):
        con.execute(f"ALTER TABLE ticks RENAME COLUMN {old} TO {new}")
    con.close()
    publish_good(kafka_settings, tmp_path / "first.ndjson", range(1, 11))
    assert Sink(kafka_settings, until_idle=True).run().total.ticks == 10
    # inserted by position, each ask landed under best_bid and each bid under best_ask
    sides = "SELECT DISTINCT best_bid::VARCHAR, best_ask::VARCHAR FROM ticks"
    assert query(kafka_settings, sides) == [("150.09000000", "150.11000000")]
    con = lake.connect(kafka_settings, create=False)
    con.execute("ALTER TABLE ticks RENAME COLUMN price TO px")
    con.close()
    publish_good(kafka_settings, tmp_path / "second.ndjson", range(11, 21))
    # by position, the prices landed in px; by name, no column takes them: the sink stops
    with pytest.raises(LakeError, match=r"columns missing price; added px"):
        Sink(kafka_settings, until_idle=True).run()
    assert query(kafka_settings, "SELECT count(*) FROM ticks") == [(10,)]


@pytest.mark.slow
def test_a_lake_removed_under_the_sink_stops_it_saying_so_and_commits_nothing(
    kafka_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import shutil

    # `rm -r .tickstore/lake` to start over, the sink running: it died in DuckDB's traceback
    # ("unable to open database file") from the check of the lake's tables after its retries
    publish_good(kafka_settings, tmp_path / "first.ndjson", range(1, 31))
    sink = Sink(kafka_settings, until_idle=True)

    class RemoveTheLake(logging.Handler):
        """Remove the lake as the sink, its lake opened, starts consuming."""

        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("sink: consuming"):
                shutil.rmtree(kafka_settings.lake_catalog.parent)

    handler = RemoveTheLake()
    logging.getLogger("tickstore").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="tickstore.sink"):
            with pytest.raises(LakeError, match="was removed while the sink ran") as told:
                sink.run()
    finally:
        logging.getLogger("tickstore").removeHandler(handler)
    assert "its messages stay in" in str(told.value)
    again = Sink(kafka_settings, until_idle=True).run()  # a new lake, from the offsets left uncommitted
    assert (again.total.ticks, again.total.rejects) == (30, 0)
    assert per_product(kafka_settings) == {"SOL-USD": 30}


@pytest.mark.slow
def test_a_sink_on_an_empty_lake_says_what_its_consumer_group_read_before(
    kafka_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A second home on the same broker went on from the group's commits, its lake lacking the rest unsaid."""
    import logging

    def told() -> list[str]:  # only this warning: a loaded machine's slow fetch is said too
        return [r.getMessage() for r in caplog.records if "holds no ticks" in r.getMessage()]

    publish_good(kafka_settings, tmp_path / "first.ndjson", range(1, 21))
    with caplog.at_level(logging.WARNING, logger="tickstore.sink"):
        Sink(kafka_settings, until_idle=True).run()  # a new group: it reads the topic from its start
        assert per_product(kafka_settings) == {"SOL-USD": 20} and not told()
        publish_good(kafka_settings, tmp_path / "second.ndjson", range(21, 26))
        other_home = kafka_settings.model_copy(update={"home": tmp_path / "other"})
        Sink(other_home, until_idle=True).run()
        assert per_product(other_home) == {"SOL-USD": 5}  # as before: the group's commits decide
        said = " ".join(told())
        assert f"the lake at {other_home.lake_dir} holds no ticks, but group {other_home.sink_group}" in said
        assert "record batches in before, for another home's lake" in said, said
        assert f"TICKSTORE_SINK_GROUP={other_home.sink_group}-2 tickstore sink" in said
        caplog.clear()
        # told so, under a group of its own the other home loads the whole topic; a lake with ticks is not told
        own_group = other_home.model_copy(update={"sink_group": f"{other_home.sink_group}-2"})
        Sink(own_group, until_idle=True).run()
        publish_good(kafka_settings, tmp_path / "third.ndjson", range(26, 31))
        Sink(kafka_settings, until_idle=True).run()
        assert not told()
    # the first home's lake lacks the five the other read under the group they share
    assert per_product(own_group) == {"SOL-USD": 25} and per_product(kafka_settings) == {"SOL-USD": 25}
