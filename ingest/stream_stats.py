"""What `tickstore stream` did: one micro-batch (for ``on_batch``), the run's totals, its progress line."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

import pyarrow as pa

from tickstore.text import count_of


@dataclass
class StreamBatch:
    """What one micro-batch did, handed to ``on_batch`` after its rows are readable online."""

    messages: int
    new_ticks: int
    products: list[str]
    latest: dict[str, datetime]  # newest event time per product touched
    rows: dict[str, pa.Table]  # view name -> the rows written online
    freshness_s: list[float]  # per message: Kafka produce time -> readable online


@dataclass
class StreamStats:
    """Totals of one `tickstore stream` run."""

    messages: int = 0
    new_ticks: int = 0
    # malformed messages skipped: the sink keeps them, with their reasons, in ticks_rejected
    rejected: int = 0
    batches: int = 0
    rows_written: int = 0
    warmed: int = 0  # messages re-read at start to refill the tail (already processed before)
    started: float = field(default_factory=time.monotonic)
    # produce -> readable latencies of the most recent messages (bounded: a stream runs for weeks)
    freshness_s: deque[float] = field(default_factory=lambda: deque(maxlen=1_000_000))
    measured: int = 0  # latencies ever added to freshness_s (the deque forgets; this counts on)
    _logged_measured: int = field(default=0, repr=False)  # `measured` at the last progress line
    joined_ms: float | None = None  # when the stream first had partitions to read (epoch ms)
    # messages produced before then: they waited for the stream to start and join its consumer group
    # (6 s on the embedded broker), which is not how fresh it keeps the store
    backlog: int = 0
    backlog_wait_s: float = 0.0  # the longest of their waits
    _logged_backlog: int = field(default=0, repr=False)

    def measure(self, produced_ms: list[float], done_ms: float) -> list[float]:
        """Record a batch's produce -> readable latencies; returns the ones counted as freshness (of
        messages produced once the stream was reading), in seconds."""
        since = self.joined_ms if self.joined_ms is not None else float("-inf")
        fresh = [(done_ms - t) / 1000 for t in produced_ms if t >= since]
        waited = [(done_ms - t) / 1000 for t in produced_ms if t < since]
        if waited:
            self.backlog += len(waited)
            self.backlog_wait_s = max(self.backlog_wait_s, *waited)
        self.freshness_s.extend(fresh)
        self.measured += len(fresh)
        return fresh

    def backlog_note(self) -> str:
        """What the freshness figures leave out, if anything: the messages that waited for the start."""
        if not self.backlog:
            return ""
        return (
            f" ({self.backlog:,} produced before the stream joined its group, not counted: "
            f"they waited up to {self.backlog_wait_s:,.1f} s)"
        )

    def progress_line(self) -> str:
        """The totals, and the freshness of the messages since the previous line.

        Only those messages: over the last 10,000, the backlog a stream starts on (hours-old messages)
        kept the live feed's p99 at "1647636 ms" for 15 minutes. At most 10,000: copying the whole
        deque (a million once a day has passed) stalled the loop.
        """
        new = self.measured - self._logged_measured
        self._logged_measured = self.measured
        recent = sorted(islice(reversed(self.freshness_s), min(new, 10_000)))
        since = "no freshness measured since the last line"  # "none since" read as no messages
        if recent:
            p99 = recent[int(0.99 * (len(recent) - 1))] * 1000
            shown = f"{new:,}" if new <= 10_000 else "10,000+"
            since = f"{shown} since the last line, freshness p99 {p99:,.0f} ms"
        if self.backlog != self._logged_backlog:  # said once, on the line after they arrived
            self._logged_backlog = self.backlog
            since += self.backlog_note()
        # a stream run without the sink would have said nothing of them
        rejected = (
            f", {self.rejected:,} rejected (the sink keeps them in ticks_rejected)" if self.rejected else ""
        )
        return (
            f"stream: {count_of(self.messages, 'message')}, {count_of(self.new_ticks, 'new tick')}{rejected}, "
            f"{count_of(self.rows_written, 'online row')}; {since}"
        )
