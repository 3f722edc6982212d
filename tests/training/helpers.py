"""What the training tests share: a lake seeded with two products' ticks."""

from __future__ import annotations

from collections.abc import Callable

from tests.tickstore_feast.conftest import load, tick_rows
from tickstore.settings import Settings


def seeded(make_settings: Callable[..., Settings]) -> Settings:
    s = make_settings()
    rows = [("BTC-USD", i * 0.7, 100 + (i % 13) / 10) for i in range(400)]
    rows += [("ETH-USD", i * 1.3, 10 + (i % 7) / 100) for i in range(200)]
    load(s, tick_rows(rows))
    return s
