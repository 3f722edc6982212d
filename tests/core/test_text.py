"""Text for people (tickstore/text.py): counts, and text from outside made safe to show."""

from __future__ import annotations

import pytest

from tickstore.text import count_of, without_passwords


def test_a_count_is_plural_unless_one() -> None:
    # the sink's summary said "1 batches"
    assert [count_of(n, "batch", "batches") for n in (0, 1, 2)] == ["0 batches", "1 batch", "2 batches"]
    assert count_of(1, "new tick") == "1 new tick" and count_of(12_345, "new tick") == "12,345 new ticks"


def test_visible_writes_control_characters_out_but_a_line_break() -> None:
    from tickstore.text import visible

    assert visible("\x1b[2J\x07a\rb\tc\nd\x85é") == "\\x1b[2J\\x07a\\x0db\\x09c\nd\\x85é"
    assert visible("a\tb\x1b", tabs=True) == "a\tb\\x1b"  # the CLI's own lines keep a tab


def test_sizes_read_as_du_si_gives_them() -> None:
    from tickstore.text import size_of

    assert [size_of(n) for n in (0, 999, 1000, 4_149_999, 6_612_600_000)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "4.1 MB",
        "6.6 GB",
    ]
    assert size_of(12e12) == "12,000.0 GB"  # no unit past GB: a lake is read in GB


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("postgresql://mlflow:s3cret@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
        ("http://user:pw@mlflow.internal:5000", "http://user:***@mlflow.internal:5000"),
        ("redis.internal:6379,password=pw,db=0", "redis.internal:6379,password=***,db=0"),
        ("http://mlflow.internal:5000", "http://mlflow.internal:5000"),  # nothing to hide
        ("127.0.0.1:6379", "127.0.0.1:6379"),
        # within a message: up to the blank that ends the URL or the item
        (
            "the Redis online store at r:6379,password=pw,db=0 cannot be read (Error 111 at r:6379)",
            "the Redis online store at r:6379,password=***,db=0 cannot be read (Error 111 at r:6379)",
        ),
        (
            "the MLflow tracking server http://u:p@h:5000 does not answer (h:5000: refused)",
            "the MLflow tracking server http://u:***@h:5000 does not answer (h:5000: refused)",
        ),
    ],
)
def test_passwords_in_urls_and_items_are_masked(given: str, shown: str) -> None:
    assert without_passwords(given) == shown
