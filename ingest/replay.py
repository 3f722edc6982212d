"""`tickstore ingest replay`: publish recorded NDJSON (plain or .gz) to ``ticks.raw``, keyed by product."""

from __future__ import annotations

import gzip
import math
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, cast

from confluent_kafka import KafkaException, Producer

from ingest import kafka
from tickstore.errors import TickstoreError
from tickstore.settings import Settings

# The key and the pacing clock come from a regex, not a JSON parse: replay must keep up with the
# sink, and the sink does the real parsing (a line that fails here still gets published and rejected).
PRODUCT_RE = re.compile(rb'"product_id"\s*:\s*"([^"]{1,64})"')
TIME_RE = re.compile(rb'"(?:time|timestamp)"\s*:\s*"([^"]{10,40})"')


@dataclass
class ReplayStats:
    """What a replay published."""

    files: int = 0
    messages: int = 0
    bytes: int = 0
    blank: int = 0
    too_large: list[str] = field(default_factory=list)  # "file:line" of lines the broker cannot take
    damaged: list[str] = field(default_factory=list)  # files that could not be read to the end, and why
    per_product: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark: JSON must not start with it
RECORDING_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")  # JSON lines, one message a line


def discover(paths: Iterable[Path]) -> list[Path]:
    """The files named, and the JSON-lines files (.ndjson, .jsonl, gzipped or not) below the folders
    named, in name order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.name.endswith(RECORDING_SUFFIXES)))
        elif path.exists():
            if not path.name.endswith(RECORDING_SUFFIXES):
                _check_json_lines(path)
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return found


def _check_json_lines(path: Path) -> None:
    """Refuse a file named without a recording's suffix whose first line is no JSON object (a
    README, a CSV): every line of it would go to ticks.raw, for the sink to reject one by one."""
    try:
        with _open(path) as fh:
            first = next((line for line in fh if line.strip()), b"")[:200]
    except (OSError, EOFError, zlib.error):
        return  # unreadable: said with its lines read, as for a recording (iter_lines)
    first = first.removeprefix(BOM).strip()
    if first and not first.startswith(b"{"):
        shown = first[:60].decode("utf-8", "replace")
        raise TickstoreError(
            f"{path} is not a recording: its first line is not a JSON object ({shown!r}); replay sends "
            "JSON lines, one message a line (.ndjson / .jsonl, gzipped or not, as `ingest coinbase` archives them)"
        )


def _open(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")  # noqa: SIM115 - closed by the caller's with


def _event_seconds(line: bytes) -> float | None:
    match = TIME_RE.search(line)
    if not match:
        return None
    text = match.group(1).decode("ascii", "replace").replace("Z", "+00:00")
    # Python parses at most 6 fractional digits; Coinbase sends up to 9.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


class Pacer:
    """Sleeps so that messages go out at recorded speed times ``speed``; long gaps are shortened."""

    def __init__(self, speed: float, max_gap_s: float) -> None:
        self.speed = speed
        self.max_gap_s = max_gap_s
        self._last_event: float | None = None
        self._due = time.monotonic()

    def wait(self, event_s: float | None, until: float | None = None) -> bool:
        """Sleep until the message recorded at ``event_s`` is due; False if ``until`` (a
        ``time.monotonic()`` deadline) comes first, so a slow pace can't overrun ``--duration``."""
        if event_s is None:
            return True
        if self._last_event is not None:
            gap = event_s - self._last_event
            if gap > 0:  # time going backwards (next file, reconnect) just restarts the clock
                self._due += min(gap, self.max_gap_s) / self.speed
        self._last_event = event_s
        while (delay := self._due - time.monotonic()) > 0:
            left = math.inf if until is None else until - time.monotonic()
            if left <= 0:
                return False
            # an hour at most: time.sleep refuses what time_t can't hold (--speed 1e-300's pauses)
            time.sleep(min(delay, left, 3600.0))
        if delay < -1.0:  # far behind (a slow broker): catch up from now rather than send a burst
            self._due = time.monotonic()
        return True


class Retimer:
    """Rewrites a message's event time to now; messages that shared a recorded time share the new one."""

    def __init__(self) -> None:
        self._last: tuple[bytes, bytes] | None = None  # (recorded, rewritten)

    def stamp(self, line: bytes) -> bytes:
        match = TIME_RE.search(line)
        if not match:
            return line
        recorded = match.group(1)
        if self._last is None or self._last[0] != recorded:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
            self._last = (recorded, now)
        return line[: match.start(1)] + self._last[1] + line[match.end(1) :]


class DamagedRecording(TickstoreError):
    """A recording that cannot be read to its end (a cut-off or corrupt .gz)."""


def iter_lines(files: list[Path], damaged: list[str] | None = None) -> Iterator[tuple[Path, int, bytes]]:
    """(file, line number, line without newline) for every line of every file.

    A file that cannot be read to its end (a .gz cut off mid-download, or not gzip at all) raises
    :class:`DamagedRecording` after its last readable line, or, given a ``damaged`` list, is noted
    there and the next file is read.
    """
    for path in files:
        lineno = 0
        try:
            with _open(path) as fh:
                for lineno, line in enumerate(fh, 1):
                    if lineno == 1 and line.startswith(BOM):  # editors on Windows start files with one
                        line = line[len(BOM) :]
                    yield path, lineno, line.rstrip(b"\r\n")
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            if isinstance(exc, EOFError):
                why = "the compressed data ends early (a cut-off file)"
            elif str(exc).startswith("Not a gzipped file"):
                why = "not a gzip file"
            else:
                why = f"corrupt compressed data ({exc})"
            problem = f"{path}: {why}; {lineno:,} lines read before it"
            if damaged is None:
                raise DamagedRecording(problem) from exc
            damaged.append(problem)


def replay(
    settings: Settings,
    paths: Iterable[Path],
    *,
    speed: float | None = None,
    max_gap_s: float = 5.0,
    progress: Callable[[int], None] | None = None,
    producer: Producer | None = None,
    retime: bool = False,
    duration_s: float | None = None,
) -> ReplayStats:
    """Publish every line of ``paths`` to ``settings.topic_raw``.

    ``speed`` None sends as fast as possible; a number paces at recorded speed times that number.
    ``retime`` stamps each message with the time it is sent (as if live; ticks that shared a
    timestamp still do), so a recording can drive the stream and the scorer, whose features go stale
    with wall-clock time. ``duration_s`` stops after that many seconds.
    """
    files = discover(paths)
    kafka.ensure_topics(settings)
    own = producer is None
    # Paced replay stands in for a live feed: send each message at once instead of lingering 20 ms
    # to fill batches, as the live Coinbase producer does.
    prod = producer or kafka.producer(settings, **(kafka.LIVE if speed else {}))
    stats = ReplayStats(files=len(files))
    pacer = Pacer(speed, max_gap_s) if speed else None
    stamper = Retimer() if retime else None
    limit = settings.max_message_bytes
    started = time.monotonic()
    until = None if duration_s is None else started + duration_s
    # a damaged file still has its readable lines published (and flushed) before it is reported
    for path, lineno, line in iter_lines(files, stats.damaged):
        size = len(line) + 1
        stats.bytes += size
        if progress:
            progress(size)
        if not line.strip():
            stats.blank += 1
            continue
        if len(line) > limit:
            stats.too_large.append(f"{path}:{lineno}")
            continue
        if duration_s is not None and time.monotonic() - started >= duration_s:
            break
        if pacer and not pacer.wait(_event_seconds(line), until):
            break
        if stamper:
            line = stamper.stamp(line)
        match = PRODUCT_RE.search(line)
        key = match.group(1) if match else None
        produce(prod, settings.topic_raw, line, key)
        stats.messages += 1
        stats.per_product[key.decode("utf-8", "replace") if key else "(no product)"] += 1
    if own:
        remaining = prod.flush(60)
        if remaining:
            raise KafkaException(
                f"{remaining} message{' was' if remaining == 1 else 's were'} not delivered within 60 s"
            )
    stats.seconds = time.monotonic() - started
    return stats


def produce(prod: Producer, topic: str, value: bytes, key: bytes | None) -> None:
    """Queue one message, waiting for room when librdkafka's local queue is full."""
    while True:
        try:
            prod.produce(topic, value=value, key=key)
            return
        except BufferError:  # local queue full: let librdkafka send some, then retry
            prod.poll(0.05)
