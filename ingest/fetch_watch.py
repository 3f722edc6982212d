"""Notice a consumer whose fetches keep coming back empty while its partitions hold more.

Tansu answers a fetch only after reading the partition's log, which takes longer the more record
batches it holds (17 ms at 20,000, 0.2 s at 300,000, 0.3-0.5 s at 400,000-800,000). A fetch that
can't finish within the consumer's ``fetch.wait.max.ms`` comes back empty, every time: past ~15,000
paced messages in a partition (a live feed sends one batch a message) the stream (5 ms wait, for
freshness) waited without a word while the ticks piled up; at 800,000 (two to three days of a live
feed) the sink's 500 ms fetches came back empty too, while 2 s ones were still answered at 1,600,000.
The process then makes its consumer again with a longer wait; a real Kafka answers as soon as data is
there, so the wait costs it nothing.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaException

from ingest import kafka

MAX_FETCH_WAIT_MS = 2000
STALL_S = 10.0  # behind this long with nothing fetched: the broker's fetches can't finish in the wait


class FetchWatch:
    """The fetch wait in use, and whether a consumer with it is stalled.

    ``who`` names the process in its log lines (``stream``, ``sink``), which go to ``log``;
    ``falling_behind`` says what a stall costs its users, ``what_to_do`` how to get out of it.
    """

    def __init__(
        self,
        topic: str,
        wait_ms: int,
        *,
        who: str,
        log: logging.Logger,
        falling_behind: str,
        what_to_do: str,
    ) -> None:
        self.topic = topic
        self.wait_ms = wait_ms
        self.who = who
        self.log = log
        self.falling_behind = falling_behind
        self.what_to_do = what_to_do
        self._behind_since: float | None = None
        self._last_check = time.monotonic()
        self._last_error = float("-inf")

    def next_wait_ms(self) -> int:
        """The wait to reconnect with: four times longer, up to MAX_FETCH_WAIT_MS."""
        return min(self.wait_ms * 4 or 20, MAX_FETCH_WAIT_MS)

    def can_wait_longer(self) -> bool:
        """Whether a reconnect would try a longer wait than the one in use."""
        return self.wait_ms < MAX_FETCH_WAIT_MS

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
            positions = kafka.positions(consumer, timeout=2) or []
        except KafkaException:
            return False
        waiting = sum(max(high - pos, 0) for _, pos, high in positions)
        if waiting == 0:
            self._behind_since = None
            return False
        self._behind_since = self._behind_since or now
        if now - max(self._behind_since, last_message or 0.0) < STALL_S:
            return False
        if not self.can_wait_longer():  # nothing left to try: say so, once a minute
            if now - self._last_error >= 60:
                self._last_error = now
                self.log.error(
                    "%s: %s has messages past where the %s reads (~%s by the broker's watermarks), but "
                    "the broker answers no fetch even within %d ms; %s. %s",
                    self.who,
                    self.topic,
                    self.who,
                    f"{waiting:,}",
                    self.wait_ms,
                    self.falling_behind,
                    self.what_to_do,
                )
            return False
        self.log.warning(
            "%s: %s has messages past where the %s reads (~%s by the broker's watermarks), but its "
            "fetches came back empty for %.0f s with fetch.wait.max.ms=%d (an embedded Tansu broker "
            "slows down as a partition grows): reconnecting with %d ms",
            self.who,
            self.topic,
            self.who,
            f"{waiting:,}",
            STALL_S,
            self.wait_ms,
            self.next_wait_ms(),
        )
        return True
