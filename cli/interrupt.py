"""Ctrl-C that stops a DuckDB query at once, wherever the query is."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C, however it arrived.

    DuckDB stops a query on SIGINT and raises, depending on where the query was, either the
    KeyboardInterrupt itself or ``RuntimeError("Query interrupted")`` caused by it.
    """
    return isinstance(exc, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt)


@contextmanager
def ctrl_c_cancels(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """While inside, Ctrl-C interrupts the query running on ``con`` (DuckDB raises InterruptException).

    DuckDB's Python client looks at Python's signals only between tasks it runs itself, and some plans
    (a window, a cross product, a ``range`` scan) sit in one task for minutes: Ctrl-C then did nothing
    until the query ended (measured: 2 of 3 one-shot queries went on past 60 s). The signal's byte
    still reaches a wakeup fd while the main thread is inside DuckDB, and a thread reading it
    interrupts the query. Python's own KeyboardInterrupt for the same Ctrl-C may follow as the main
    thread comes back: whoever handles the first calls :func:`settle`.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set the wakeup fd, and only it gets signals
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)  # the signal handler must never block

    def watch() -> None:
        while data := reader.recv(64):  # b"" once the writer is closed: done
            if signal.SIGINT in data:
                con.interrupt()

    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="ctrl-c", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        writer.close()
        watcher.join(timeout=1.0)
        reader.close()


def settle(seconds: float = 0.05) -> None:
    """Take the rest of a Ctrl-C just handled, so that one Ctrl-C is one KeyboardInterrupt.

    It arrives twice: as DuckDB's InterruptException (the watcher's) and as Python's KeyboardInterrupt,
    in either order and a few bytecodes apart. Here Python's, if still pending, is swallowed, and the
    watcher gets the time to act before the next statement starts (an interrupt with no query running
    is a no-op in DuckDB). A second Ctrl-C within ``seconds`` is taken as part of the first.
    """
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            time.sleep(left)
        except KeyboardInterrupt:
            continue
