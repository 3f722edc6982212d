"""Notice a consumer whose fetches keep coming back empty while its partitions hold more.

Tansu answers a fetch only after reading the partition's log, which takes longer the more record
batches it holds: past ~15,000 paced messages a partition took over 5 ms, every fetch of the stream
(5 ms wait, for freshness) came back empty, and it waited without a word while the ticks piled up.
The stream then makes its consumer again with a longer wait; a real Kafka answers as soon as data is
there, so the wait costs it nothing.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaException

log = logging.getLogger("ingest.stream")  # the stream's own lines: one logger to follow (and filter)

FETCH_WAIT_MS = 5  # fetch whatever has arrived (latency over throughput), waiting at most this for more
MAX_FETCH_WAIT_MS = 2000
STALL_S = 10.0  # behind this long with nothing fetched: the broker's fetches can't finish in the wait


class FetchWatch:
    """The fetch wait in use, and whether a consumer with it is stalled."""

    def __init__(self, topic: str, wait_ms: int | None = None) -> None:
        self.topic = topic
        self.wait_ms = FETCH_WAIT_MS if wait_ms is None else wait_ms
        self._behind_since: float | None = None
        self._last_check = time.monotonic()
        self._last_error = float("-inf")

    def next_wait_ms(self) -> int:
        """The wait to reconnect with: four times longer, up to MAX_FETCH_WAIT_MS."""
        return min(self.wait_ms * 4 or 20, MAX_FETCH_WAIT_MS)

    def waited(self, wait_ms: int) -> None:
        """A new consumer fetches with ``wait_ms``: the watch starts afresh."""
        self.wait_ms = wait_ms
        self._behind_since = None
        self._last_check = time.monotonic()

    def stalled(self, consumer: Consumer, last_message: float | None) -> bool:
        """Whether messages wait on ``consumer``'s partitions while its fetches come back empty, and a
        longer wait is left to try (at the longest, it says so once a minute instead)."""
        now = time.monotonic()
        # the check asks the broker (~20 ms on Tansu): not while messages flow, which a stall is not
        if now - self._last_check < 1.0 or (last_message and now - last_message < STALL_S / 2):
            return False
        self._last_check = now
        try:
            assigned = consumer.assignment()
            positions = consumer.position(assigned) if assigned else []
            waiting = 0
            for tp in positions:
                if tp.offset < 0:  # nothing fetched there yet: the committed offset is where it starts
                    tp.offset = max(consumer.committed([tp], timeout=2)[0].offset, 0)
                _, high = consumer.get_watermark_offsets(tp, timeout=2)
                waiting += max(high - tp.offset, 0)
        except KafkaException:
            return False
        if waiting == 0:
            self._behind_since = None
            return False
        self._behind_since = self._behind_since or now
        if now - max(self._behind_since, last_message or 0.0) < STALL_S:
            return False
        if self.wait_ms >= MAX_FETCH_WAIT_MS:  # nothing left to try: say so, once a minute
            if now - self._last_error >= 60:
                self._last_error = now
                log.error(
                    "stream: %s has messages past where the stream reads (~%s by the broker's "
                    "watermarks), but the broker answers no fetch even within %d ms; online features "
                    "are going stale. An embedded broker holding days of messages: restart it once "
                    "the sink has caught up (it keeps nothing), or use a real Kafka",
                    self.topic,
                    f"{waiting:,}",
                    self.wait_ms,
                )
            return False
        log.warning(
            "stream: %s has messages past where the stream reads (~%s by the broker's watermarks), but "
            "its fetches came back empty for %.0f s with fetch.wait.max.ms=%d (an embedded Tansu broker "
            "slows down as a partition grows): reconnecting with %d ms",
            self.topic,
            f"{waiting:,}",
            STALL_S,
            self.wait_ms,
            self.next_wait_ms(),
        )
        return True
