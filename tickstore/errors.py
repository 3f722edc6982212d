"""The error type whose message tells a user what to do: the CLI prints it without a traceback."""

from __future__ import annotations


class TickstoreError(RuntimeError):
    """A failure a user can act on (no lake, no broker, ...); its message says how."""


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C, however it arrived.

    DuckDB stops a query on SIGINT and raises, depending on where the query was, either the
    KeyboardInterrupt itself or ``RuntimeError("Query interrupted")`` caused by it.
    """
    return isinstance(exc, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt)
