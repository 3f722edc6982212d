"""Drift reports in processes of their own: results and reasons come back, a crash is said."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickstore.errors import TickstoreError
from training.drift_jobs import run_apart


def test_a_worker_that_fails_is_said_with_its_last_words(tmp_path: Path) -> None:
    # not frames at all: the report fails on its first look at them (not a "can't compare" ValueError)
    with pytest.raises(TickstoreError, match=r"the broken drift report failed \(exit code 1\): \w+Error"):
        run_apart({"broken": (None, None, tmp_path, "broken", None)}, tmp_path)
