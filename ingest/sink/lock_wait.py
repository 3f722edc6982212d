"""Waiting out another process's lock on the lake catalog, for one batch of the sink."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import duckdb

from tickstore import lake

log = logging.getLogger("tickstore.sink")

# How long a batch waits for a catalog another process holds locked before the sink gives up (its
# offsets stay uncommitted, so nothing is lost): a lock is no reason to call the batch bad data.
LOCK_WAIT_S = 300.0
LOCK_SAY_S = 5.0  # a lock held this long is said: a shorter one is another writer's commit
STOP_LOCK_WAIT_S = 5.0  # once stopping, how long a locked catalog is waited for before the batch is left


class StoppedMidBatch(Exception):
    """A stop arrived while a batch waited for a locked catalog or a failing write was retried: the
    batch is left to the next run. ``why`` says which, for the log."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class LockWait:
    """One batch's wait for a locked catalog: how long it has lasted, said once it lasts
    ``LOCK_SAY_S`` and each minute after, given up after ``LOCK_WAIT_S`` (or ``STOP_LOCK_WAIT_S``
    once stopping)."""

    def __init__(self, catalog: Path) -> None:
        self.catalog = catalog
        self._since: float | None = None
        self._said_at = LOCK_SAY_S

    def locked(self, exc: duckdb.Error, attempt: int, stopping: bool) -> None:
        """Note that ``attempt`` met the lock ``exc``; raise once the batch should wait no longer."""
        self._since = self._since or time.monotonic()
        held_s = time.monotonic() - self._since
        self._say(held_s, attempt, exc)
        # a stop waits out another writer's commit, but not LOCK_WAIT_S of someone's lock
        if stopping and held_s > STOP_LOCK_WAIT_S:
            raise StoppedMidBatch(f"the lake catalog {self.catalog} was locked by another process") from exc
        if held_s > LOCK_WAIT_S:
            raise lake.LakeError(
                f"the lake catalog {self.catalog} stayed locked for {LOCK_WAIT_S:.0f} s: another process "
                f"holds it ({exc}); nothing was committed, so restarting the sink resumes from this batch"
            ) from exc

    def _say(self, held_s: float, attempt: int, exc: duckdb.Error) -> None:
        """Say the lock once it has lasted LOCK_SAY_S, and each minute after; a shorter one is another
        writer's commit, which two sinks meet a few times a minute: a warning for each ("lake write
        failed ... database is locked") read as trouble where there was none."""
        if held_s < self._said_at:
            log.debug("sink: the lake catalog is locked by another writer (attempt %d): waiting", attempt)
            return
        self._said_at = held_s + 60.0
        log.warning(
            "sink: the lake catalog %s has been locked by another process for %.0f s (another sink, "
            "`tickstore sql --write`, or a program holding it open): the batch waits for it, up to "
            "%.0f s, its offsets uncommitted (%s)",
            self.catalog,
            held_s,
            LOCK_WAIT_S,
            exc,
        )
