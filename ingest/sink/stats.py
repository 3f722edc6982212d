"""What a sink run did: totals for its summary line and the benchmark."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ingest.sink.writer import BatchResult
from tickstore.text import count_of


@dataclass
class SinkStats:
    """Totals over a sink run, for its summary line and the benchmark."""

    total: BatchResult = field(default_factory=BatchResult)
    batches: int = 0
    commit_latencies: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    first_message: float | None = None  # when the first message arrived (after the group join)
    last_commit: float | None = None  # when the last batch's offsets were committed
    left_uncommitted: int = 0  # messages of a batch given up on a stop; the next run reads them again

    def sustained_rate(self) -> float:
        """New ticks per second from the first message received to the last commit."""
        if self.first_message is None or self.last_commit is None or self.last_commit <= self.first_message:
            return 0.0
        return self.total.ticks / (self.last_commit - self.first_message)

    def p99_commit_s(self) -> float:
        if not self.commit_latencies:
            return 0.0
        ordered = sorted(self.commit_latencies)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    def summary(self) -> str:
        """The run in one line: how long, what came in and what became of it."""
        t = self.total
        return (
            f"{time.monotonic() - self.started:.1f} s: {count_of(t.messages, 'message')}, {count_of(t.ticks, 'new tick')}, "
            f"{count_of(t.duplicates, 'duplicate')}, {t.rejects:,} rejected, {t.controls:,} control, "
            f"{count_of(self.batches, 'batch', 'batches')}"
        )
