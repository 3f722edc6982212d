"""The dead-letter copy: each message the sink rejects also goes to ``ticks.dlq``, with its reason."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ingest.sink.writer import BatchResult

log = logging.getLogger("tickstore.sink")  # the sink's own lines: one logger to follow


def _delivered(err: KafkaError | None, msg: Message) -> None:
    if err is not None:
        log.warning("sink: a reject was not copied to the dead-letter topic: %s", err)


def publish_rejects(producer: Producer | None, topic: str, result: BatchResult) -> None:
    """Copy ``result``'s rejects to the dead-letter ``topic`` too, so other consumers can react to them."""
    if not result.rejected or producer is None:
        return
    for source_topic, partition, offset, reason, payload in result.rejected:
        headers: dict[str, str | bytes | None] = {
            "reason": reason.encode(),
            "source": f"{source_topic}/{partition}/{offset}".encode(),
        }
        try:
            producer.produce(topic, value=payload, headers=headers, on_delivery=_delivered)
        except (BufferError, KafkaException) as exc:  # the lake row is the record of truth
            log.warning("sink: could not copy a reject to %s: %s", topic, exc)
    producer.poll(0)
