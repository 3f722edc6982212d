"""Evidently drift reports, and `tickstore monitor drift` exit codes gating retraining."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd

from tests.conftest import REPO
from tests.tickstore_feast.conftest import load, tick_rows
from tickstore.settings import Settings
from training.drift import drift_report


def test_drift_report_names_the_drifted_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.normal(0, 1, 500), "product_id": "X"})
    cur = pd.DataFrame({"a": rng.normal(3, 1, 500), "b": rng.normal(0, 1, 500), "product_id": "X"})
    result = drift_report(ref, cur, tmp_path, "r")
    assert (result.drifted, result.columns) == (1, 2)
    assert result.per_column["a"] < 0.05 < result.per_column["b"]
    assert result.html.stat().st_size > 10_000 and result.json.exists()


def test_monitor_drift_exit_code(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    rng = np.random.default_rng(1)
    calm = [("A", i * 0.5, 100 + rng.normal(0, 0.01)) for i in range(2400)]  # 0..20 min, 2 ticks/s
    wild = [("A", 1200 + i * 0.1, 100 + rng.normal(0, 1)) for i in range(12000)]  # 20..40 min, 10 ticks/s
    load(s, tick_rows(calm + wild))

    def drift(reference: str, current: str) -> int:
        env = {"TICKSTORE_HOME": str(s.home), "PATH": ""}
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "cli",
                "monitor",
                "drift",
                "--reference",
                reference,
                "--current",
                current,
                "--every",
                "5",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        ).returncode

    assert drift("2026-01-01T00:05..2026-01-01T00:10", "2026-01-01T00:05..2026-01-01T00:10") == 0  # itself
    assert drift("2026-01-01T00:05..2026-01-01T00:10", "2026-01-01T00:25..2026-01-01T00:30") == 1
    # nothing to compare is no verdict: 2, never the 1 that tells a gate to retrain
    assert drift("2030-01-01T00:00..2030-01-01T00:10", "2026-01-01T00:25..2026-01-01T00:30") == 2
