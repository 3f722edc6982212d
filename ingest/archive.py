"""Rotating NDJSON archive of every raw message received, readable by `tickstore ingest replay`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO

import duckdb

from tickstore.lake import REJECTED_DDL, TICKS_DDL, tune


class ArchiveWriter:
    """Appends raw messages, one per line, to ``folder/<feed>_<UTC start>.ndjson``, rotating by size or age."""

    def __init__(self, folder: Path, feed: str, rotate_bytes: int, rotate_s: float) -> None:
        self.folder = folder
        self.feed = feed
        self.rotate_bytes = rotate_bytes
        self.rotate_s = rotate_s
        self.files: list[Path] = []
        self._fh: IO[bytes] | None = None
        self._size = 0
        self._opened = 0.0

    def write(self, message: bytes) -> None:
        """Archive one message (newlines inside it are escaped JSON, so one line stays one message)."""
        if (
            self._fh is None
            or self._size >= self.rotate_bytes
            or time.monotonic() - self._opened >= self.rotate_s
        ):
            self._rotate()
        assert self._fh is not None
        line = message.rstrip(b"\r\n") + b"\n"
        self._fh.write(line)
        self._size += len(line)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _rotate(self) -> None:
        self.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = self.folder / f"{self.feed}_{stamp}.ndjson"
        n = 1
        while path.exists():  # several rotations in one second
            path = self.folder / f"{self.feed}_{stamp}_{n}.ndjson"
            n += 1
        self._fh = open(path, "ab")  # noqa: SIM115 - kept open across writes, closed on rotate
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
