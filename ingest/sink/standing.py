"""Where the sink stands in its topic: the lag its progress lines give, and when --until-idle is done."""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaException

from ingest import offsets
from ingest.fetch_watch import FetchWatch
from ingest.sink.stats import SinkStats
from tickstore.errors import TickstoreError
from tickstore.settings import Settings

log = logging.getLogger("tickstore.sink")


class Standing:
    """Asks where a sink's consumer stands (the consumer is handed in: the sink makes it anew at times)."""

    def __init__(self, settings: Settings, watch: FetchWatch, stats: SinkStats) -> None:
        self.settings = settings
        self._watch = watch
        self._stats = stats
        self._joined = False

    def positions(self, consumer: Consumer) -> list[tuple[int, int]] | None:
        """(position, high watermark) per assigned partition; None while the group is joining.

        The watermarks are those the consumer's own fetches brought, else the broker's asked on a
        connection of its own. Asking through the consumer blocked the loop: Tansu answers after the
        consumer's pending fetch, 1.0-1.5 s for three partitions at the sink's 500 ms wait and 3.4 s
        at 2 s, which (each progress line) kept batches waiting and, past max.poll.interval.ms, took
        the sink out of its group.
        """
        out = offsets.positions(consumer, self.settings)
        if out is None:
            return None
        log.debug("sink: positions %s", [(tp.partition, p, h) for tp, p, h in out])
        return [(p, h) for _, p, h in out]

    def idle_enough(self, consumer: Consumer, idle_s: float) -> bool:
        """With --until-idle: caught up and quiet for ``sink_idle_ms``.

        Watermarks can disagree with what is fetchable (Tansu under-reports them, a partition can be
        stuck), so a long silence also ends the run, with a warning; offsets are committed, so a later
        run continues where this one stopped. Never joining the group at all is an error.
        """
        s = self.settings
        if idle_s * 1000 < s.sink_idle_ms:
            return False
        positions = self._safe_positions(consumer)
        if positions is not None:
            self._joined = True
        elif self._joined:  # a passing broker error or rebalance: ask again later
            return False
        else:
            join_limit = 3 * s.rebalance_timeout_ms / 1000 + 30
            if time.monotonic() - self._stats.started > join_limit:
                raise TickstoreError(  # the CLI prints it as an error, not a traceback
                    f"the sink could not join consumer group {s.sink_group} at {s.bootstrap} within "
                    f"{join_limit:.0f} s: check the broker (`tickstore broker status`)"
                )
            return False
        if all(pos >= hi for pos, hi in positions):
            # the fetches say so: the broker's own watermarks, asked once, on a connection apart from
            # the consumer's pending fetch, must agree
            return offsets.read_to_end(consumer, self.settings)
        quiet_limit = max(10.0, 5 * s.sink_idle_ms / 1000)
        # a broker too slow for the fetch wait looks quiet too: the watch tries a longer wait first
        if idle_s >= quiet_limit and not self._watch.can_wait_longer():
            remaining = sum(max(hi - pos, 0) for pos, hi in positions)
            log.warning(
                "sink: watermarks say %d messages remain, but none arrived for %.0f s: stopping",
                remaining,
                idle_s,
            )
            return True
        return False

    def caught_up(self, consumer: Consumer, idle_s: float) -> bool:
        """Quiet for ``sink_idle_ms`` with every assigned partition read to its high watermark."""
        if idle_s * 1000 < self.settings.sink_idle_ms:
            return False
        positions = self._safe_positions(consumer)
        return bool(positions) and all(pos >= hi for pos, hi in positions or [])

    def _safe_positions(self, consumer: Consumer) -> list[tuple[int, int]] | None:
        try:
            return self.positions(consumer)
        except KafkaException:
            return None

    def lag(self, consumer: Consumer) -> str:
        """Messages the sink has yet to read, for its progress line ("joining", "?" when not known)."""
        try:
            positions = self.positions(consumer)
        except KafkaException:
            return "?"
        return "joining" if positions is None else f"{sum(max(hi - pos, 0) for pos, hi in positions):,}"
