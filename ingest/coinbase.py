"""`tickstore ingest coinbase`: the live Coinbase ticker feed -> raw archive + ``ticks.raw``.

Subscribes to the ticker and heartbeat channels, archives every raw message to rotating NDJSON files
(which `tickstore ingest replay` reads back), publishes each to Kafka keyed by product, and reconnects
with exponential backoff (and subscribes again) when the connection drops or goes silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from ingest import kafka
from ingest.archive import ArchiveWriter
from ingest.replay import PRODUCT_RE
from tickstore.settings import Settings

log = logging.getLogger("tickstore.coinbase")

FEEDS = ("exchange", "advanced-trade")


def subscriptions(feed: str, products: list[str]) -> list[dict[str, object]]:
    """The subscribe messages for ``feed``: tickers plus heartbeats, so silence means a dead link."""
    if feed == "exchange":
        return [{"type": "subscribe", "product_ids": products, "channels": ["ticker", "heartbeat"]}]
    if feed == "advanced-trade":
        return [
            {"type": "subscribe", "product_ids": products, "channel": "ticker"},
            {"type": "subscribe", "channel": "heartbeats"},
        ]
    raise ValueError(f"unknown feed {feed!r}: choose one of {', '.join(FEEDS)}")


@dataclass
class LiveStats:
    """What a live session received."""

    messages: int = 0
    connections: int = 0
    per_product: Counter[str] = field(default_factory=Counter)
    archive_files: list[str] = field(default_factory=list)
    archive_missed: int = 0  # messages published but not archived: the archive could not write
    archive_problem: str | None = None  # why, the last time it could not


@dataclass
class Backoff:
    """Exponential backoff with jitter, reset after a connection that delivered messages."""

    initial: float = 0.5
    cap: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * 2**self.attempt)
        self.attempt += 1
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0


class CoinbaseIngest:
    """One live feed session: connect, subscribe, archive + publish, reconnect until told to stop."""

    def __init__(
        self,
        settings: Settings,
        feed: str,
        products: list[str],
        *,
        url: str | None = None,
        duration_s: float | None = None,
        max_messages: int | None = None,
        producer: Producer | None = None,
        on_message: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.feed = feed
        self.products = products
        self.subscribe = subscriptions(feed, products)
        self.url = url or (
            settings.coinbase_exchange_url if feed == "exchange" else settings.coinbase_advanced_url
        )
        self.duration_s = duration_s
        self.max_messages = max_messages
        self._producer = producer  # made in run_async if not given, once the broker has answered
        self.on_message = on_message
        self.archive = ArchiveWriter(
            settings.archive_dir / feed.replace("-", "_"),
            feed.replace("-", "_"),
            int(settings.archive_rotate_mb * 1024 * 1024),
            settings.archive_rotate_s,
        )
        self.stats = LiveStats()
        self.backoff = Backoff()
        self._stop = asyncio.Event()

    @property
    def producer(self) -> Producer:
        """The Kafka producer the session publishes with (exists once :meth:`run` has started)."""
        if self._producer is None:
            raise RuntimeError("the producer is made when the session runs")
        return self._producer

    def stop(self) -> None:
        """Ask the session to finish (safe from a signal handler in the event loop)."""
        self._stop.set()

    def run(self) -> LiveStats:
        """Run until ``duration_s`` / ``max_messages`` / :meth:`stop`; archive and Kafka are flushed."""
        return asyncio.run(self.run_async())

    async def run_async(self) -> LiveStats:
        # topics first: without a broker that fails in one line, before librdkafka starts logging retries
        kafka.ensure_topics(self.settings)
        if self._producer is None:
            self._producer = kafka.producer(self.settings, **kafka.LIVE)
        producer = self._producer
        backoff = self.backoff
        deadline = time.monotonic() + self.duration_s if self.duration_s else None
        try:
            while not self._done(deadline):
                received_before, connections_before = self.stats.messages, self.stats.connections
                try:
                    await self._until_stopped(self._session(deadline), deadline)
                except (OSError, WebSocketException, TimeoutError) as exc:
                    if self.stats.connections > connections_before:
                        log.warning("coinbase: connection to %s lost: %s", self.url, exc)
                    else:  # never connected this time: "lost" misled when there was no network at all
                        log.warning(
                            "coinbase: cannot connect to %s: %s (is there internet access? a proxy?)",
                            self.url,
                            exc,
                        )
                if self._done(deadline):
                    break
                if self.stats.messages > received_before:
                    backoff.reset()
                delay = backoff.next_delay()
                if deadline is not None and time.monotonic() + delay >= deadline:
                    # --duration ends first: wait out the rest rather than overrun it by a whole delay
                    delay = max(deadline - time.monotonic(), 0.0)
                else:
                    log.info("coinbase: trying again in %.1f s", delay)
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
        finally:
            self.archive.close()
            producer.flush(30)
        self.stats.archive_files = [str(p) for p in self.archive.files]
        self.stats.archive_missed = self.archive.missed
        return self.stats

    def _done(self, deadline: float | None) -> bool:
        if self._stop.is_set():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return True
        return self.max_messages is not None and self.stats.messages >= self.max_messages

    async def _until_stopped(self, session: Coroutine[Any, Any, None], deadline: float | None) -> None:
        """Run ``session`` until it ends, :meth:`stop` is called or the deadline passes (then cancel it).

        A connection attempt that hangs (a handshake never answered) waited up to its 10 s open timeout
        past --duration's end and past a Ctrl-C; errors of the session are raised as they come.
        """
        task = asyncio.ensure_future(session)
        stopped = asyncio.ensure_future(self._stop.wait())
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            await asyncio.wait({task, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not task.cancelled():
            task.result()

    async def _session(self, deadline: float | None) -> None:
        # close_timeout: a close the server never answers (on a stop) is not waited for 10 s
        async with connect(
            self.url, max_size=self.settings.max_message_bytes, ping_interval=20, close_timeout=2
        ) as ws:
            self.stats.connections += 1
            for message in self.subscribe:
                await ws.send(json.dumps(message))
            log.info("coinbase: subscribed to %s on %s (%s)", ",".join(self.products), self.url, self.feed)
            await self._receive(ws, deadline)

    async def _receive(self, ws: ClientConnection, deadline: float | None) -> None:
        last_poll = time.monotonic()
        while not self._done(deadline):
            timeout = self.settings.coinbase_stale_s
            if deadline is not None:
                timeout = min(timeout, max(deadline - time.monotonic(), 0.01))
            try:
                raw = await asyncio.wait_for(ws.recv(decode=False), timeout=timeout)
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                raise TimeoutError(f"no message for {self.settings.coinbase_stale_s:.0f} s") from None
            self._handle(raw)
            if time.monotonic() - last_poll >= 1.0:
                self.producer.poll(0)
                last_poll = time.monotonic()

    def _handle(self, raw: bytes) -> None:
        # Archive first: the archive is the record of what the feed sent, whatever Kafka does. One it
        # cannot write (a full disk) pauses itself and counts what it missed: the feed goes on to Kafka.
        if not self.archive.write(raw):
            self.stats.archive_problem = self.archive.problem
        match = PRODUCT_RE.search(raw)
        key = match.group(1) if match else None
        while True:
            try:
                self.producer.produce(self.settings.topic_raw, value=raw, key=key)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.stats.messages += 1
        self.stats.per_product[key.decode("utf-8", "replace") if key else "(control)"] += 1
        if self.on_message:
            self.on_message(1)
