"""The error type whose message tells a user what to do: the CLI prints it without a traceback."""

from __future__ import annotations


class TickstoreError(RuntimeError):
    """A failure a user can act on (no lake, no broker, ...); its message says how."""
