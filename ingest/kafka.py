"""Kafka client configuration shared by the producers and the sink, from the settings."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ingest import wire
from tickstore import net, stopping
from tickstore.errors import TickstoreError
from tickstore.settings import Settings

# For live feeds: a few messages a second gain nothing from batching, and freshness pays for linger.
LIVE = {"linger.ms": 1}

REPEAT_EVERY_S = 60.0


class _OncePerMinute(logging.Filter):
    """librdkafka logs a failing connection at every reconnect, twenty lines a second while a broker
    is down: the same line (its timings aside) passes once a minute, with how often it came."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[str, tuple[float, int]] = {}  # line -> (when shown, repeats since)

    def filter(self, record: logging.LogRecord) -> bool:
        key = re.sub(r"\d+(?:\.\d+)?\s*ms", "", record.getMessage())
        now = time.monotonic()
        shown, repeats = self._seen.get(key, (float("-inf"), 0))
        if now - shown < REPEAT_EVERY_S:
            self._seen[key] = (shown, repeats + 1)
            return False
        if len(self._seen) > 1000:  # a stream runs for weeks: forget lines not seen for a minute
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < REPEAT_EVERY_S}
        self._seen[key] = (now, 0)
        if repeats:
            record.msg = f"{record.msg} (and {repeats} more time{'s' * (repeats != 1)} in the last minute)"
        return True


# librdkafka's own log, through Python logging (handed over when a client polls) instead of raw stderr
rdkafka_log = logging.getLogger("tickstore.kafka.client")
rdkafka_log.addFilter(_OncePerMinute())


def producer(settings: Settings, **overrides: Any) -> Producer:
    """A producer that batches for throughput and accepts messages up to ``max_message_bytes``."""
    conf: dict[str, Any] = {
        **settings.kafka_config,
        "bootstrap.servers": settings.bootstrap,
        "logger": rdkafka_log,
        "linger.ms": 20,
        "batch.size": 1 << 20,
        "message.max.bytes": settings.max_message_bytes + 1024,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1 << 20,
    }
    conf.update(overrides)
    return _made(Producer, conf)


def consumer(settings: Settings, group: str, **overrides: Any) -> Consumer:
    """A consumer-group member that commits offsets itself, only after its work is durable."""
    conf: dict[str, Any] = {
        **settings.kafka_config,
        "bootstrap.servers": settings.bootstrap,
        "logger": rdkafka_log,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # Tansu makes each group join wait the whole rebalance timeout, which is this setting.
        "max.poll.interval.ms": settings.rebalance_timeout_ms,
        # librdkafka wants session <= max.poll; heartbeats well inside it keep the member alive.
        "session.timeout.ms": min(settings.rebalance_timeout_ms, 45_000),
        "heartbeat.interval.ms": max(100, min(settings.rebalance_timeout_ms, 45_000) // 5),
        "fetch.max.bytes": max(settings.max_message_bytes * 2, 64 << 20),
        "max.partition.fetch.bytes": settings.max_message_bytes + 1024,
        "receive.message.max.bytes": max(settings.max_message_bytes * 2, 64 << 20) + 1024,
    }
    conf.update(overrides)
    return _made(Consumer, conf)


def admin(settings: Settings, errors: Callable[[KafkaError], None] | None = None) -> AdminClient:
    """An admin client, quiet: a broker that does not answer is reported once, by the caller
    (``errors`` gets librdkafka's errors, such as a refused login, when the client is polled)."""
    # log_level 2: librdkafka would print each failed connection attempt
    conf = {**settings.kafka_config, "bootstrap.servers": settings.bootstrap, "log_level": 2}
    return _made(AdminClient, conf | ({"error_cb": errors} if errors else {}))


C = TypeVar("C", Producer, Consumer, AdminClient)


def _made(client: type[C], conf: dict[str, Any]) -> C:
    """``client(conf)``, with a property librdkafka refuses (from TICKSTORE_KAFKA_CONFIG) named."""
    try:
        with stopping.signals_wait():  # a stop landing in the client's reading of conf is not an error
            return client(conf)
    except (KafkaException, ValueError, TypeError) as exc:
        reason = exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
        raise KafkaConfigError(
            f"the Kafka client refused its configuration ({reason}): check TICKSTORE_KAFKA_CONFIG, whose "
            "properties are librdkafka's (https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)"
        ) from exc


def join_note(settings: Settings) -> str:
    """A note for a consumer's first log line: the embedded broker holds every group join for the
    whole rebalance timeout, and without it the first seconds of each run looked like a hang."""
    if not settings.embedded_broker:
        return ""
    return f" (the embedded broker holds a group join up to {settings.rebalance_timeout_ms / 1000:g} s)"


class KafkaConfigError(TickstoreError):
    """TICKSTORE_KAFKA_CONFIG holds a property librdkafka does not take."""


class BrokerUnreachable(TickstoreError):
    """No Kafka broker answered at the configured bootstrap servers."""


class BrokerRefused(BrokerUnreachable):
    """A server took tickstore's connection but gave it no metadata: a refused login, a broker that
    wants TLS or SASL, or no Kafka at all. ``why`` says which, and what to do."""

    def __init__(self, bootstrap: str, why: str, *, login: bool) -> None:
        super().__init__(f"the server at {bootstrap} {why}")
        self.why, self.login = why, login


def cluster(settings: Settings, timeout: float) -> tuple[AdminClient, Any]:
    """An admin client and the cluster's metadata through it; BrokerRefused saying why there is none."""
    errors: list[KafkaError] = []
    client = admin(settings, errors.append)
    deadline = time.monotonic() + timeout
    while True:
        # asked a second at a time: a refused login is final, and said between the attempts
        try:
            return client, client.list_topics(timeout=max(min(1.0, deadline - time.monotonic()), 0.1))
        except KafkaException as exc:
            failure = exc
        client.poll(0.1)  # serves the error callbacks: a refused login is said there, not in the exception
        login = next((e for e in errors if e.code() == KafkaError._AUTHENTICATION), None)
        if login is not None:
            raise BrokerRefused(
                settings.bootstrap,
                f"refused tickstore's login ({login.str()}): check sasl.mechanisms, sasl.username and "
                "sasl.password in TICKSTORE_KAFKA_CONFIG",
                login=True,
            ) from failure
        tls = next((e for e in errors if e.code() == KafkaError._SSL), None)
        if tls is not None:  # a broker certificate not trusted here: final too, as a refused login
            reason = re.sub(r"^\S+/bootstrap: (SSL handshake failed: )?", "", tls.str())
            raise BrokerRefused(
                settings.bootstrap,
                f"TLS handshake failed ({reason}): check security.protocol, and ssl.ca.location (the CA "
                "that signed the broker's certificate) in TICKSTORE_KAFKA_CONFIG",
                login=False,
            ) from failure
        if time.monotonic() >= deadline:
            raise BrokerRefused(settings.bootstrap, _no_metadata(settings, failure), login=False) from failure


def _no_metadata(settings: Settings, failure: KafkaException) -> str:
    """Why a server that takes connections gives no metadata, as far as tickstore can tell, and what to do."""
    why = f"accepts connections but gave no Kafka metadata ({failure.args[0].str()})"
    if settings.embedded_broker:
        return why + ": if another program holds the embedded broker's port, set TICKSTORE_BROKER_PORT"
    if "security.protocol" not in settings.kafka_config:
        # a broker wanting TLS or SASL drops a plaintext client just so, without a word
        return why + (
            ": a Kafka that wants TLS or SASL closes plaintext connections so; set security.protocol "
            "(and credentials) in TICKSTORE_KAFKA_CONFIG, or check TICKSTORE_KAFKA_BOOTSTRAP"
        )
    return why + ": check TICKSTORE_KAFKA_BOOTSTRAP and the security settings in TICKSTORE_KAFKA_CONFIG"


def ensure_topics(settings: Settings, timeout: float = 10.0) -> list[str]:
    """Create ``ticks.raw`` and ``ticks.dlq`` when missing; return the names created.

    Every command that talks to Kafka calls this first, so it is where a missing broker is reported.
    """
    if settings.embedded_broker:
        hint = "start the embedded one with `tickstore broker start`, or point TICKSTORE_KAFKA_BOOTSTRAP at a Kafka"
    else:  # `tickstore broker start` said "start the embedded one with `tickstore broker start`" here
        hint = (
            "start that Kafka or correct TICKSTORE_KAFKA_BOOTSTRAP, which names it; while it is set, "
            "tickstore starts no broker of its own: unset it for the embedded one (`tickstore broker "
            "start`, on TICKSTORE_BROKER_PORT)"
        )
    refused = _refused(settings.bootstrap, min(timeout, 2.0))
    if refused:  # fail at once: librdkafka would retry a refused port until the timeout
        raise BrokerUnreachable(f"no Kafka broker answers at {settings.bootstrap} ({refused}): {hint}")
    client, meta = cluster(settings, timeout)  # quiet: BrokerRefused says what went wrong, once
    existing = set(meta.topics)
    wanted = [t for t in (settings.topic_raw, settings.topic_dlq) if t not in existing]
    if not wanted:
        return []
    # the broker's default replication factor: 1 refused by managed Kafkas that demand 3
    futures = client.create_topics(
        [NewTopic(t, num_partitions=settings.topic_partitions) for t in wanted],
        operation_timeout=timeout,
    )
    for future in futures.values():
        try:
            future.result()
        except Exception as exc:  # the topic may have been created concurrently: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return wanted


def _refused(bootstrap: str, timeout: float) -> str | None:
    """Why no bootstrap server accepts a TCP connection, or None when one does."""
    return net.unreachable(net.kafka_servers(bootstrap), timeout)


def next_offsets(messages: list[Message]) -> list[TopicPartition]:
    """Per partition of ``messages``, the offset after the last one: what to commit."""
    last: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic() or "", m.partition() or 0)
        last[key] = max(last.get(key, -1), m.offset() or 0)
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]


def raw_table(messages: list[Message], max_bytes: int) -> pa.Table:
    """Consumed messages as the Arrow input of ingest/wire.sql, with their Kafka positions and times."""
    return wire.raw_table(
        [m.topic() for m in messages],
        [m.partition() for m in messages],
        [m.offset() for m in messages],
        [m.timestamp()[1] if m.timestamp()[0] else None for m in messages],
        [m.value() for m in messages],
        max_bytes,
    )
