"""Counts in messages (tickstore/text.py)."""

from __future__ import annotations

from tickstore.text import count_of


def test_a_count_is_plural_unless_one() -> None:
    # the sink's summary said "1 batches"
    assert [count_of(n, "batch", "batches") for n in (0, 1, 2)] == ["0 batches", "1 batch", "2 batches"]
    assert count_of(1, "new tick") == "1 new tick" and count_of(12_345, "new tick") == "12,345 new ticks"
