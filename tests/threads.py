"""Work started in several threads at the same moment, for races between processes opening one file."""

from __future__ import annotations

import threading
from collections.abc import Callable


def at_once(work: Callable[[], object], threads: int = 8) -> list[str]:
    """Run ``work`` in ``threads`` threads released together; what each that failed raised."""
    start = threading.Barrier(threads)
    errors: list[str] = []

    def run() -> None:
        start.wait()
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - every failure is the finding
            errors.append(repr(exc))

    running = [threading.Thread(target=run) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return errors
