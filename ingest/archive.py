"""Rotating NDJSON archive of every raw message received, readable by `tickstore ingest replay`."""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path
from typing import IO

import duckdb

from tickstore.errors import storage_trouble
from tickstore.lake import REJECTED_DDL, TICKS_DDL, tune

log = logging.getLogger("tickstore.archive")


# how long a refused archive waits before it tries a new file: long enough not to spin on a full disk
RETRY_S = 10.0


class ArchiveWriter:
    """Appends raw messages, one per line, to ``folder/<feed>_<UTC start>.ndjson``, rotating by size or age.

    A write the machine refuses (a full disk, a read-only or forbidden folder) pauses the archive, not
    the feed: the caller still publishes every message to Kafka, the messages the archive missed are
    counted, and a new file is tried every ``retry_s`` seconds. Each line is written unbuffered, so a
    line is either whole in its file or cut back off it, and counted missed.
    """

    def __init__(
        self, folder: Path, feed: str, rotate_bytes: int, rotate_s: float, retry_s: float = RETRY_S
    ) -> None:
        self.folder = folder
        self.feed = feed
        self.rotate_bytes = rotate_bytes
        self.rotate_s = rotate_s
        self.retry_s = retry_s
        self.files: list[Path] = []
        self.missed = 0  # messages not archived, all pauses together
        self.problem: str | None = None  # why the archive is paused, while it is
        self._gap = 0  # messages missed in the current pause
        self._retry_at = 0.0
        self._fh: IO[bytes] | None = None
        self._size = 0
        self._opened = 0.0

    def write(self, message: bytes) -> bool:
        """Archive one message (newlines inside it are escaped JSON, so one line stays one message);
        False when the archive is paused and the message was not archived."""
        now = time.monotonic()
        if self.problem is not None and now < self._retry_at:
            self._miss()
            return False
        line = message.rstrip(b"\r\n") + b"\n"
        try:
            if self._fh is None or self._size >= self.rotate_bytes or now - self._opened >= self.rotate_s:
                self._rotate()
            self._append(line)
        except OSError as exc:
            self._pause(exc, now)
            self._miss()
            return False
        if self.problem is not None:
            log.warning(
                "archive: writing again, to %s; %s message(s) were not archived while it could not "
                "(they went to Kafka all the same)",
                self.files[-1],
                f"{self._gap:,}",
            )
            self.problem, self._gap = None, 0
        return True

    def close(self) -> None:
        """Close the current file; never raises (there is nothing buffered to lose)."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError as exc:
                log.warning("archive: closing %s: %s", self.files[-1], exc)

    def _append(self, line: bytes) -> None:
        assert self._fh is not None
        done = 0
        try:
            while done < len(line):  # a disk filling up takes part of a line, then refuses the rest
                took = self._fh.write(line[done:])
                if not took:
                    raise OSError(errno.EIO, "the file took none of the line")
                done += took
        except OSError:
            if done:
                self._cut_back()
            raise
        self._size += len(line)

    def _cut_back(self) -> None:
        """Drop a partly written line, so the file ends with a whole message (replay reads it back)."""
        assert self._fh is not None
        try:
            self._fh.truncate(self._size)
        except OSError as exc:  # left as it is: replay files the cut line as a rejected message
            log.warning("archive: could not cut a partial line off %s: %s", self.files[-1], exc)

    def _pause(self, exc: OSError, now: float) -> None:
        first = self.problem is None
        self.problem = f"{storage_trouble(exc) or 'the write failed'} ({exc})"
        self._retry_at = now + self.retry_s
        self.close()
        try:
            if self.files and self.files[-1].stat().st_size == 0:
                self.files.pop().unlink()  # made by the rotation that failed: nothing in it
        except OSError:
            pass  # gone, or not removable: listed as it is
        if first:
            log.error(
                "archive: cannot write %s: %s. The feed goes on: messages still go to Kafka, only the "
                "archive misses them until it can write again (tried every %.0f s)",
                self.folder,
                self.problem,
                self.retry_s,
            )

    def _miss(self) -> None:
        self.missed += 1
        self._gap += 1

    def _rotate(self) -> None:
        self.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = self.folder / f"{self.feed}_{stamp}.ndjson"
        n = 1
        while path.exists():  # several rotations in one second
            path = self.folder / f"{self.feed}_{stamp}_{n}.ndjson"
            n += 1
        # unbuffered: each line reaches the file in one call, so a refusal is seen line by line
        self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open across writes, closed on rotate
        self.files.append(path)
        self._size = 0
        self._opened = time.monotonic()


def load_ticks(paths: list[Path], max_tick_bytes: int = 1 << 20) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose ``ticks`` table holds the ticks of NDJSON files (archives, recordings),
    parsed and deduplicated by the very code the sink uses, so feature SQL can be rerun on raw data."""
    from ingest import replay, wire
    from ingest.sink.writer import LakeWriter

    con = duckdb.connect()
    tune(con)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(TICKS_DDL)
    con.execute(REJECTED_DDL)
    writer = LakeWriter(con, max_tick_bytes)
    for path in replay.discover(paths):
        values = [line for _, _, line in replay.iter_lines([path])]
        n = len(values)
        # the file and line number stand where a Kafka position would
        writer.write(wire.raw_table([str(path)] * n, [0] * n, range(n), [None] * n, values, max_tick_bytes))
    return con
