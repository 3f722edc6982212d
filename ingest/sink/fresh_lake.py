"""A sink starting on an empty lake with a consumer group that has read the topic before: said.

The group's committed offsets decide where the sink starts, not the lake: a new home's sink on a
broker shared with another home (the embedded broker of the first home started, say), or a lake
removed and made again, started past every message the group had read, and the lake lacked them
without a word.
"""

from __future__ import annotations

import logging

import duckdb
from confluent_kafka import KafkaException

from ingest import broker, offsets
from tickstore.settings import Settings

log = logging.getLogger("tickstore.sink")


def lake_is_empty(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the lake holds no tick and no rejected message (a lake just made, or never written)."""
    row = con.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM ticks) AND NOT EXISTS (SELECT 1 FROM ticks_rejected)"
    ).fetchone()
    return bool(row and row[0])


def say_what_an_empty_lake_misses(settings: Settings, con: duckdb.DuckDBPyConnection) -> int | None:
    """Warn when the lake is empty but the sink's group has committed offsets past messages of the
    topic; returns how many messages the sink will not read (None when nothing is said)."""
    if not lake_is_empty(con):
        return None
    try:
        before = offsets.read_before(settings, settings.sink_group)
    except KafkaException:  # the broker is asked again as the sink subscribes, and its error said then
        return None
    if not before:
        return None
    # Tansu's watermarks count record batches, which hold one message or more
    missed = f"~{before:,} record batches" if settings.embedded_broker else f"{before:,} messages"
    whose = "a removed lake, or another home's on the same broker"
    own = ""
    if settings.embedded_broker and (owner := broker.home_of_broker(settings)) and not owner.removed:
        whose = f"another home's lake: the embedded broker at {settings.bootstrap} is {owner.home}'s"
        own = "; or give this home a broker of its own: set TICKSTORE_BROKER_PORT, then `tickstore broker start`"
    log.warning(
        "sink: the lake at %s holds no ticks, but group %s has read %s %s in before, for %s. It goes "
        "on from there, so this lake will lack what came before. To load the topic from its start: "
        "TICKSTORE_SINK_GROUP=%s-2 tickstore sink%s",
        settings.lake_dir,
        settings.sink_group,
        settings.topic_raw,
        missed,
        whose,
        settings.sink_group,
        own,
    )
    return before
