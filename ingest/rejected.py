"""Publish messages the sink rejected to ticks.raw again, for it to parse anew (after a fix).

A message lands in `ticks_rejected` byte for byte, so none is lost; once the reason is gone (a limit
raised, `ingest/wire.sql` taught a new shape), this sends them through the pipeline once more. Ticks
are keyed by their content, so a message whose ticks already landed (another of its tickers was the
bad one) adds nothing; one that still fails is rejected again, as a new row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException, Producer

from ingest import kafka
from ingest.replay import PRODUCT_RE, produce
from tickstore import lake
from tickstore.settings import Settings

# One row per distinct message, its first rejection, oldest first. A message has a row per bad ticker,
# and one sent again that still fails gets new rows: sent once per run, not once per row, it can't
# double with each run. $reason is a LIKE pattern, bound: NULL matches every reason.
REJECTED = """
SELECT reason, payload FROM ticks_rejected
WHERE $reason IS NULL OR reason LIKE $reason
QUALIFY row_number() OVER (
    PARTITION BY payload ORDER BY kafka_time NULLS LAST, src_topic, src_partition, src_offset, ticker_index
) = 1
ORDER BY kafka_time NULLS LAST, src_topic, src_partition, src_offset
"""


@dataclass
class Republished:
    """What `tickstore ingest rejected` found and sent."""

    by_reason: Counter[str] = field(default_factory=Counter)  # distinct messages matched, by reason
    sent: int = 0
    empty: int = 0  # rejected for having no value (counted once): nothing to send
    too_large: int = 0  # over TICKSTORE_MAX_MESSAGE_BYTES: the broker would refuse them

    @property
    def matched(self) -> int:
        return sum(self.by_reason.values())


def republish(
    settings: Settings,
    reason: str | None = None,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Republished:
    """Send each distinct rejected message whose reason is LIKE ``reason`` (all when None) to
    ticks.raw once, as it was consumed; with ``dry_run`` only count them."""
    con = lake.connect(settings, create=False, read_only=True)
    try:
        result = con.execute(REJECTED, {"reason": reason})
        prod: Producer | None = None  # made for the first message to send: none to send, no broker needed
        out = Republished()
        while rows := result.fetchmany(10_000):
            for why, payload in rows:
                out.by_reason[why] += 1
                if payload is None:
                    out.empty += 1
                elif len(payload) > settings.max_message_bytes:
                    out.too_large += 1
                elif not dry_run:
                    if prod is None:
                        kafka.ensure_topics(settings)
                        prod = kafka.producer(settings)
                    value = bytes(payload)
                    match = PRODUCT_RE.search(value)
                    produce(prod, settings.topic_raw, value, match.group(1) if match else None)
                    out.sent += 1
            if progress:
                progress(len(rows))
    finally:
        con.close()
    if prod is not None:
        remaining = prod.flush(60)
        if remaining:
            raise KafkaException(
                f"{remaining} message{' was' if remaining == 1 else 's were'} not delivered within 60 s"
            )
    return out
