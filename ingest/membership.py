"""A consumer kept in its group while its loop waits on something else (an online store that is down)."""

from __future__ import annotations

from confluent_kafka import Consumer, Message


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

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self._held: list[Message] = []
        self._paused = False

    def keep(self) -> None:
        """Poll once without taking messages (call it at least every second or so while waiting)."""
        assignment = self.consumer.assignment()
        if assignment:  # again each time: a rebalance during the wait can assign more
            self.consumer.pause(assignment)
            self._paused = True
        message = self.consumer.poll(0)
        if message is not None:
            self._held.append(message)

    def release(self) -> list[Message]:
        """Resume fetching; the messages polls returned during the wait, oldest first."""
        if self._paused:
            self.consumer.resume(self.consumer.assignment())
            self._paused = False
        held, self._held = self._held, []
        return held
