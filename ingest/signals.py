"""SIGTERM / SIGINT as a polite stop for the long-running loops (sink, stream)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

from tickstore import stopping

log = logging.getLogger(__name__)


def install(stop: Callable[[], None], who: str) -> dict[int, object]:
    """Make SIGTERM and SIGINT call ``stop``; returns the previous handlers for ``restore``.

    Only the main thread may set handlers: elsewhere (tests and the demo run loops in threads) this
    does nothing and the caller stops the loop itself.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s: signal %d, finishing the batch and stopping", who, signum)
        stopping.remember(signum)  # for the work around the loop, should it be in one (the demo)
        stop()

    previous: dict[int, object] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
    return previous


def restore(previous: dict[int, object]) -> None:
    """Put back the handlers ``install`` replaced."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
