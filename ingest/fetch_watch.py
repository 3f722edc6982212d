"""Notice a consumer that reads almost nothing while its partitions hold more.

Tansu answers a fetch only after finding the fetch offset in the partition's log, which takes longer
the more record batches it holds (17 ms at 20,000, 0.2 s at 300,000, 0.3-0.5 s at 400,000-800,000; a
live feed sends one batch a message). A fetch whose search outlasts the consumer's
``fetch.wait.max.ms`` comes back with one record batch, or none: past ~15,000 paced messages in a
partition the stream (5 ms wait, for freshness) read nothing more, and a sink behind on a partition of
900,000 batches (500 ms wait) read one message a second, while a 2 s wait read 6,500 a second there.
The process then makes its consumer again with a longer wait; a real Kafka answers as soon as data is
there, so the wait costs it nothing.

"Almost nothing" is fewer than KEEPING_UP messages a second, none of them produced in the last
STALL_S seconds, for STALL_S: a live feed read as it arrives is fresh, a backlog read at speed is
many. Only then is the broker asked how far behind the consumer is.

A longer wait is kept until every broker has been down and messages flow again: the embedded broker
restarts empty (it keeps nothing), so the first, short wait is taken up again, and the watch lengthens
it anew should the broker come back as large as it left.

On the embedded broker a process starts with the wait its topic's fullest partition is known to need
(TANSU_WAITS), where it found that out a stall at a time before (~15 s each): a stream restarted on a
partition of 30,000 batches read nothing for its first 15 s. While it runs it moves to the next wait as
its partitions grow past each size (``outgrown``), instead of stalling there: a stream reading 400
messages a second stalled ~7,000 batches in, 19-21 s without a new tick online, against 3.7-3.8 s for
the reconnect. A live feed of 12 ticks a second fills 4,000 batches of a partition in six minutes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from ingest import offsets
from tickstore.settings import Settings

MAX_FETCH_WAIT_MS = 2000
STALL_S = 10.0  # reading almost nothing this long while behind: the broker can't answer in the wait
KEEPING_UP = 100  # messages a second: a consumer reading this many is not stalled, whatever it reads
# (record batches in a Tansu partition, the first of the watch's waits that reads new messages there).
# Measured 2026-12-02 on a quiet machine, a message produced to a partition's end and read, median: 5
# ms in 6-8 ms up to 6,000, 36 ms at 8,000, and a backlog of 2,000 behind the end read in 0.1 s at
# 6,000, 0.7 s at 8,000, 292 of them in 20 s at 10,000; a stream reading 400 messages a second stalled
# at ~7,000. 20 ms: 10-23 ms up to 15,000, 50 ms at 30,000 (its backlog slower: 0.8 s); 80 ms 27-33
# ms up to 15,000, 49 ms at 40,000, then as 320 ms does (105-149 ms at 60,000-100,000), but a stream
# reading 400 messages a second with it fell seconds behind past ~70,000; 320 ms 171 ms at 150,000,
# 408-545 ms at 200,000-250,000; 1280 ms 655-782 ms there. At 800,000 only 2 s answered reliably
# (2026-11-30). A longer wait than needed costs freshness (5 ms read a new message in 6 ms on a small
# partition, 20 ms in 10 ms, 80 ms in 27 ms, 320 ms in 90 ms at 40,000): the size picks the shortest
# that reads, with room for a loaded machine. A second machine (AMD EPYC, same day) agrees with each
# step: 5 ms read in 7-12 ms up to 8,000 and nothing at 15,000; 20 ms 6-23 ms to 15,000, 200 ms at
# 30,000; 80 ms 87 ms at 60,000, 140 ms at 100,000, nothing at 200,000; 320 ms 524 ms at 300,000.
TANSU_WAITS = ((4_000, 5), (15_000, 20), (60_000, 80), (300_000, 320), (500_000, 1280))
GROWTH_CHECK_S = 10.0  # how often a process on the embedded broker compares its partitions with TANSU_WAITS


def wait_for(batches: int, shortest: int) -> int:
    """The fetch wait a Tansu partition of ``batches`` record batches answers within, ``shortest`` at
    least; within the first size a process keeps its own."""
    if batches <= TANSU_WAITS[0][0]:
        return shortest
    for size, wait_ms in TANSU_WAITS:
        if batches <= size:
            return max(wait_ms, shortest)
    return max(MAX_FETCH_WAIT_MS, shortest)


class FetchWatch:
    """The fetch wait in use, and whether a consumer with it is stalled.

    It watches ``settings.topic_raw`` on the broker of ``settings``. ``who`` names the process in its
    log lines (``stream``, ``sink``), which go to ``log``; ``falling_behind`` says what a stall costs
    its users, ``what_to_do`` how to get out of it.
    """

    def __init__(
        self,
        settings: Settings,
        wait_ms: int,
        *,
        who: str,
        log: logging.Logger,
        falling_behind: str,
        what_to_do: str,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic_raw
        self.who = who
        self.log = log
        self.falling_behind = falling_behind
        self.what_to_do = what_to_do
        self._last_error = float("-inf")
        self.checks = 0  # how often the broker was asked how far behind the consumer is
        self.first_wait_ms = wait_ms
        self._brokers_lost = False
        self._embedded = False  # set by fit_to_broker: only the embedded broker's fetches slow with size
        self._next_growth_check = float("-inf")
        self.waited(wait_ms)

    def on_error(self, err: KafkaError) -> None:
        """librdkafka's error callback (a consumer's ``error_cb``): notes every broker gone at once."""
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_lost = True

    def back_after_restart(self, messages: Sequence[Message]) -> bool:
        """Whether to fetch with the first wait again: messages flow after every broker was down,
        and the wait in use is longer than the first (a restarted embedded broker holds nothing)."""
        if not (self._brokers_lost and messages):
            return False
        self._brokers_lost = False
        if self.wait_ms <= self.first_wait_ms:
            return False
        self.log.info(
            "%s: every broker was down and answers again; an embedded broker restarts empty, so "
            "fetching with %d ms again (was %d ms)",
            self.who,
            self.first_wait_ms,
            self.wait_ms,
        )
        return True

    def fit_to_broker(self) -> None:
        """On the embedded broker, start with the wait the topic's fullest partition needs (a real Kafka
        answers as soon as data is there: left alone)."""
        if not self.settings.embedded_broker:
            return
        self._embedded = True
        try:
            stats = offsets.topic_stats(self.settings).get(self.topic)
        except KafkaException:
            return  # the first fetches say what is wrong with the broker
        wait_ms = self._longer_wait(
            stats.busiest if stats else 0, f"the fullest partition of {self.topic} holds", "fetching"
        )
        if wait_ms is not None:
            self.waited(wait_ms)

    def outgrown(self, consumer: Consumer) -> int | None:
        """On the embedded broker, the longer wait ``consumer``'s fullest partition has grown to need
        (TANSU_WAITS), or None: looked at once every GROWTH_CHECK_S."""
        now = time.monotonic()
        if not self._embedded or now < self._next_growth_check:
            return None
        self._next_growth_check = now + GROWTH_CHECK_S
        # the watermarks librdkafka keeps from the fetches' answers: no question to the broker
        batches = []
        try:
            for tp in consumer.assignment():
                low, high = consumer.get_watermark_offsets(tp, cached=True)
                batches.append(high - max(low, 0) if high >= 0 else 0)  # none fetched yet: negative
        except KafkaException:
            return None  # the consumer's own fetches say what is wrong
        return self._longer_wait(
            max(batches, default=0), f"a partition of {self.topic} has grown to", "reconnecting"
        )

    def _longer_wait(self, busiest: int, found: str, then: str) -> int | None:
        """The wait a partition of ``busiest`` record batches needs where longer than the one in use
        (saying so: ``found`` that size, ``then`` what the process does), else None."""
        wait_ms = wait_for(busiest, self.wait_ms)
        if wait_ms <= self.wait_ms:
            return None
        self.log.info(
            "%s: %s %s record batches, past what the embedded broker answers within a %d ms fetch wait: "
            "%s with %d ms",
            self.who,
            found,
            f"{busiest:,}",
            self.wait_ms,
            then,
            wait_ms,
        )
        return wait_ms

    def next_wait_ms(self) -> int:
        """The wait to reconnect with: four times longer, up to MAX_FETCH_WAIT_MS."""
        return min(self.wait_ms * 4 or 20, MAX_FETCH_WAIT_MS)

    def can_wait_longer(self) -> bool:
        """Whether a reconnect would try a longer wait than the one in use."""
        return self.wait_ms < MAX_FETCH_WAIT_MS

    def waited(self, wait_ms: int, grace_s: float = 0.0) -> None:
        """A new consumer fetches with ``wait_ms``: the watch starts afresh, ``grace_s`` from now (the
        time a new group member may take to join)."""
        now = time.monotonic()
        self.wait_ms = wait_ms
        self._slow_since = now + grace_s  # since when it has read almost nothing
        self._second, self._read_this_second = now, 0
        self._behind_since: float | None = None
        self._next_check = float("-inf")

    def read(self, messages: Sequence[Message]) -> None:
        """Count what a poll returned: many messages in a second, or a fresh one, is keeping up."""
        now = time.monotonic()
        if now - self._second >= 1.0:
            self._second, self._read_this_second = now, 0
        self._read_this_second += len(messages)
        if self._read_this_second >= KEEPING_UP:
            self._slow_since = max(self._slow_since, now)
            return
        fresh_ms = (time.time() - STALL_S) * 1000
        # the first fresh message ends the search: a live feed costs one timestamp a poll
        if any(m.timestamp()[0] and m.timestamp()[1] >= fresh_ms for m in messages):
            self._slow_since = max(self._slow_since, now)

    def stalled(self, consumer: Consumer) -> bool:
        """Whether ``consumer`` has read almost nothing for STALL_S while its partitions hold more, and
        a longer wait is left to try (at the longest, it says so once a minute instead)."""
        now = time.monotonic()
        if now - self._slow_since < STALL_S:
            self._behind_since = None
            return False
        # the check asks the broker (~20 ms on Tansu, seconds on a partition of ~1M batches): only while
        # reading almost nothing, once a second while behind, once every STALL_S while caught up and idle.
        # Asked on a connection of its own: through the consumer, Tansu answers only after its pending
        # fetch (up to a fetch wait a partition, past max.poll.interval.ms at a 2 s wait)
        if now < self._next_check:
            return False
        self._next_check = now + 1.0
        self.checks += 1
        try:
            positions = offsets.positions(consumer, self.settings, timeout=2, fresh=True) or []
        except KafkaException:
            return False
        waiting = sum(max(high - pos, 0) for _, pos, high in positions)
        if waiting == 0:  # caught up and idle
            self._behind_since = None
            self._next_check = now + STALL_S
            return False
        # behind at two checks STALL_S / 2 apart: not a burst the next fetch was about to take
        self._behind_since = self._behind_since or now
        if now - self._behind_since < STALL_S / 2:
            return False
        if not self.can_wait_longer():  # nothing left to try: say so, once a minute
            if now - self._last_error >= 60:
                self._last_error = now
                self.log.error(
                    "%s: %s has messages past where the %s reads (~%s by the broker's watermarks), but "
                    "the broker answers almost no fetch even within %d ms; %s. %s",
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
            "fetches brought almost nothing for %.0f s with fetch.wait.max.ms=%d (an embedded Tansu "
            "broker slows down as a partition grows): reconnecting with %d ms",
            self.who,
            self.topic,
            self.who,
            f"{waiting:,}",
            now - self._slow_since,
            self.wait_ms,
            self.next_wait_ms(),
        )
        return True
