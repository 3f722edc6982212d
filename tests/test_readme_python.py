"""The README's Python examples run as shown, on a lake of ticks at the times they name."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.conftest import REPO
from tests.tickstore_feast.conftest import load, tick_rows
from tickstore.settings import Settings


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_every_python_example_in_the_readme_runs(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = make_settings()
    # two minutes of BTC-USD ticks up to the training-set example's time (2025-12-06 06:20 UTC)
    start = datetime(2025, 12, 6, 6, 18, tzinfo=UTC)
    load(s, tick_rows([("BTC-USD", i, 100.0 + i / 100) for i in range(120)], start))
    monkeypatch.setenv("TICKSTORE_HOME", str(s.home))
    blocks = python_blocks()
    assert len(blocks) >= 2
    spaces = []
    for block in blocks:
        space: dict[str, object] = {}
        exec(compile(block, "README.md", "exec"), space)  # noqa: S102 - the README's own example code
        spaces.append(space)
    train = next(space["train"] for space in spaces if "train" in space)
    # the training-set example's row at 06:20 takes the newest tick's row (06:19:59), whose window
    # [06:18:59, 06:19:59] holds 61 ticks
    assert train["product_id"].tolist() == ["BTC-USD"] and train["tick_count_60s"].tolist() == [61]
