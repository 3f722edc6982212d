"""A consumer kept in its group while its loop waits on something else (an online store that is down) or
runs long work in a thread (a big batch's lake write, a compaction pass)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import Consumer, Message

T = TypeVar("T")
# How long after the consumer's last poll work in a thread (KeptInGroup.run) goes before the consumer is
# polled, paused: half of max.poll.interval.ms (6 s by default). Pausing drops what librdkafka had
# fetched ahead, which the sink's batches (gathered and written in ~1 s) need not pay: at a fifth, the
# pauses cost `bench/ingest.py` ~10%.
QUIET_SHARE = 0.5


class KeptInGroup:
    """Polls ``consumer`` with its partitions paused, so that a long wait does not take it out of its group.

    librdkafka counts the time between the application's polls: past max.poll.interval.ms (6 s by
    default here) the member leaves its group ("Application maximum poll interval exceeded"), and on
    the embedded broker the join back waits the whole rebalance timeout before anything is read again.
    A Redis down for a few seconds under `tickstore stream` cost that: its write was retried without a
    poll, the stream left its group, and its features went 9.7 s stale. Paused, a poll fetches
    nothing; a message a poll returns all the same (of a partition assigned during the wait) is held
    and handed back, in order, by :meth:`release`.
    """

    def __init__(self, consumer: Consumer, max_poll_ms: int) -> None:
        self.consumer = consumer
        self.quiet_s = QUIET_SHARE * max_poll_ms / 1000
        self.polled_at = time.monotonic()
        self._held: list[Message] = []
        self._paused = False

    def keep(self) -> None:
        """Poll once without taking messages (call it at least every second or so while waiting)."""
        assignment = self.consumer.assignment()
        if assignment:  # again each time: a rebalance during the wait can assign more
            self.consumer.pause(assignment)
            self._paused = True
        message = self.consumer.poll(0)
        self.polled_at = time.monotonic()
        if message is not None:
            self._held.append(message)

    def polled(self) -> None:
        """The consumer was polled by its owner (a ``consume`` counts): the quiet time starts anew."""
        self.polled_at = time.monotonic()

    def run(
        self,
        work: Callable[[], T],
        name: str,
        *,
        quiet_s: float | None = None,
        each: Callable[[], None] | None = None,
    ) -> T:
        """``work()`` in a thread called ``name`` while this one keeps the consumer in its group; its
        result, or its exception raised here. Polls start ``quiet_s`` (default: the share of
        max.poll.interval.ms above) after the consumer's last poll; ``each`` is called every 0.2 s
        of the wait (a stop's check). Call :meth:`release` after.

        A big batch (a million ticks: ~9 s, 3 to gather and 6 to write) ran in the sink's loop without
        a poll: past max.poll.interval.ms the sink left its group, its offset commit failed, and it
        read the whole batch again as duplicates.
        """
        result: list[T] = []
        failed: list[BaseException] = []

        def target() -> None:
            try:
                result.append(work())
            except BaseException as exc:  # handed to the caller's thread
                failed.append(exc)

        worker = threading.Thread(target=target, name=name, daemon=True)
        worker.start()
        quiet = self.quiet_s if quiet_s is None else quiet_s
        worker.join(max(0.0, self.polled_at + quiet - time.monotonic()))
        while worker.is_alive():
            self.keep()
            if each is not None:
                each()
            worker.join(0.2)
        if failed:
            raise failed[0]
        return result[0]

    def release(self) -> list[Message]:
        """Resume fetching; the messages polls returned during the wait, oldest first."""
        if self._paused:
            self.consumer.resume(self.consumer.assignment())
            self._paused = False
        held, self._held = self._held, []
        return held
