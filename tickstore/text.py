"""Counts in messages: "1 batch", "2 new ticks"."""

from __future__ import annotations


def count_of(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` (with thousands separators) and ``noun``, plural unless one: "1 worker", "1,200 ticks"."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
