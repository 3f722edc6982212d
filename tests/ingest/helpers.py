"""Test helpers: an independent reference count of the recordings, a lake query shortcut, a wait on
a process running in a thread, a folder that refuses new files, and the stream tests' recordings with
the offline values they are compared against."""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ingest.archive import load_ticks
from tests.conftest import REPO, SHARED
from tickstore import lake
from tickstore.settings import Settings


def reference_ticks(files: list[Path]) -> Counter[str]:
    """Distinct ticks per product, counted with plain json (not wire.sql): Exchange by sequence,
    Advanced Trade by receive time plus ticker content."""
    seen: dict[str, set[Any]] = {}
    for path in files:
        for line in path.read_bytes().splitlines():
            msg = json.loads(line)
            if msg.get("type") == "ticker" and "channel" not in msg:
                seen.setdefault(msg["product_id"], set()).add(msg["sequence"])
            elif msg.get("channel") == "ticker":
                for event in msg["events"]:
                    for t in event["tickers"]:
                        seen.setdefault(t["product_id"], set()).add(
                            (msg["timestamp"], json.dumps(t, sort_keys=True))
                        )
    return Counter({p: len(keys) for p, keys in seen.items()})


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    con = lake.connect(settings, create=False)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def wait_while_alive(
    thread: threading.Thread, what: str, done: Callable[[], bool], seconds: float = 90
) -> None:
    """Until ``done()``, failing if ``thread`` (the stream or sink under test) dies or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not done():
        assert thread.is_alive(), "the process under test died"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@contextmanager
def write_protected(folder: Path) -> Iterator[None]:
    """``folder`` refuses new files inside the block, as a full disk or a read-only mount would."""
    root = os.geteuid() == 0  # root writes through any mode bits, not through the immutable flag
    if root:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"no immutable flag on this file system: {made.stderr.strip()}")
    else:
        folder.chmod(0o555)
    try:
        yield
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


RECORDINGS = [
    SHARED / "advanced_trade" / "btc-usd_20251206_050705.ndjson",
    SHARED / "advanced_trade" / "btc-usd_20251206_054035.ndjson",
]
VIEWS = ["ticks_10s", "ticks_60s", "ticks_300s"]


def offline_rows(files: list[Path], view: str) -> dict[tuple[str, pd.Timestamp], dict]:
    """The view's SQL over every tick of ``files``, keyed by (product, event time)."""
    con = load_ticks(files)
    df = con.sql((REPO / "sql" / f"{view}.sql").read_text()).df()
    return {(r["product_id"], r["event_time"]): r for r in df.to_dict("records")}


def same(a: object, b: object) -> bool:
    """Online and offline values alike: equal to 1e-9 relative, or both NULL / NaN."""
    if (
        a is None
        or b is None
        or (isinstance(a, float) and math.isnan(a))
        or (isinstance(b, float) and math.isnan(b))
    ):
        return (a is None or a != a) and (b is None or b != b)
    x, y = float(a), float(b)  # type: ignore[arg-type]
    return abs(x - y) <= 1e-9 * max(abs(x), abs(y)) or x == y
