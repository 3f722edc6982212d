"""Evidently drift reports, and `tickstore monitor drift` exit codes gating retraining."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.tickstore_feast.conftest import load, tick_rows
from tickstore.settings import Settings
from training.drift import drift_report, row_blocks


def test_drift_report_names_the_drifted_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.normal(0, 1, 500), "product_id": "X"})
    cur = pd.DataFrame({"a": rng.normal(3, 1, 500), "b": rng.normal(0, 1, 500), "product_id": "X"})
    result = drift_report(ref, cur, tmp_path, "r")
    assert (result.drifted, result.columns) == (1, 2)
    a, b = result.per_column["a"], result.per_column["b"]
    assert a.method == b.method == "K-S p_value" and a.threshold == 0.05  # Evidently's pick for 500 rows
    assert a.score < 0.05 < b.score and a.drifted and not b.drifted
    assert [name for name, _ in result.most_drifted(2)] == ["a", "b"]
    assert str(a) == f"K-S p_value {a.score:.3g} < 0.05"


def test_a_feature_with_values_on_one_side_only_is_drifted_not_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # order-book sizes recorded in one range and not the other: Evidently refused the empty column
    # ("An empty column 'imbalance_mean_10s' was provided"), and `tickstore train` failed at its end
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"a": rng.normal(0, 1, 400), "imbalance": rng.normal(0, 1, 400), "gone": np.nan})
    ref.loc[100:, "imbalance"] = np.nan
    cur = pd.DataFrame({"a": rng.normal(0, 1, 400), "imbalance": np.nan, "gone": np.nan})
    result = drift_report(ref, cur, tmp_path, "r")
    assert (result.drifted, result.columns, result.share) == (1, 2, 0.5)  # "gone": nothing to compare
    one_sided = result.per_column["imbalance"]
    assert (
        one_sided.drifted
        and str(one_sided) == "no values in the current rows (25% of the reference rows had one)"
    )
    assert result.most_drifted(1)[0][0] == "imbalance" and not result.per_column["a"].drifted
    flipped = drift_report(cur, ref, tmp_path, "r")
    assert str(flipped.per_column["imbalance"]).startswith("no values in the reference rows")
    with pytest.raises(
        ValueError, match=r"no feature has values in both .* \(values on one side only: imbalance\)"
    ):
        drift_report(ref[["imbalance"]], cur[["imbalance"]], tmp_path, "r")


def test_distance_scores_drift_above_their_threshold_and_agree_with_evidentlys_count(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # above 1,000 rows Evidently scores numeric columns by a distance: there a high score is drift
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({c: rng.normal(0, 1, 3000) for c in "abcd"})
    cur = pd.DataFrame({"a": rng.normal(2, 1, 3000), "b": rng.normal(0.5, 1, 3000)})
    cur["c"], cur["d"] = rng.normal(0, 1, 3000), rng.normal(0, 1.02, 3000)
    result = drift_report(ref, cur, tmp_path, "r")
    methods = {d.method for d in result.per_column.values()}
    assert methods == {"Wasserstein distance (normed)"}
    assert {n for n, d in result.per_column.items() if d.drifted} == {"a", "b"}
    assert result.drifted == sum(d.drifted for d in result.per_column.values()) == 2
    assert [name for name, _ in result.most_drifted(2)] == ["a", "b"]
    assert str(result.per_column["a"]).endswith(">= 0.1")
    assert result.html.stat().st_size > 10_000 and result.json.exists()


def test_monitor_drift_exit_code(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    rng = np.random.default_rng(1)
    calm = [("A", i * 0.5, 100 + rng.normal(0, 0.01)) for i in range(2400)]  # 0..20 min, 2 ticks/s
    wild = [("A", 1200 + i * 0.1, 100 + rng.normal(0, 1)) for i in range(12000)]  # 20..40 min, 10 ticks/s
    load(s, tick_rows(calm + wild))

    def drift(reference: str, current: str, every: str = "5") -> subprocess.CompletedProcess[str]:
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
                every,
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    same = drift("2026-01-01T00:05..2026-01-01T00:10", "2026-01-01T00:05..2026-01-01T00:10")  # itself
    assert same.returncode == 0 and "closest to drifting:" in same.stderr and "drifted\n" not in same.stderr
    assert "note: the ranges share 2026-01-01T00:05:00..2026-01-01T00:10:00 (100% of --current)" in " ".join(
        same.stderr.split()
    )
    wild = drift("2026-01-01T00:05..2026-01-01T00:10", "2026-01-01T00:25..2026-01-01T00:30")
    assert wild.returncode == 1 and "most drifted:" in wild.stderr
    # each current range keeps its own report folder, with the rows compared beside it
    runs = {p.name: sorted(f.name for f in p.iterdir()) for p in (s.home / "reports").iterdir()}
    assert runs.keys() == {"drift_20260101T000500_20260101T001000", "drift_20260101T002500_20260101T003000"}
    assert {"drift.html", "drift.json", "current.parquet", "reference.parquet"} <= set(
        runs["drift_20260101T002500_20260101T003000"]
    )
    assert "report: " + str(s.home / "reports" / "drift_20260101T002500_20260101T003000") in " ".join(
        wild.stderr.split()
    )
    # the columns listed are the drifted ones, each with its test, score and threshold
    listed = [line for line in wild.stderr.splitlines() if line.startswith("  ")]
    assert listed and all(line.endswith("drifted") and " block K-S p_value (" in line for line in listed)
    # 5 minutes of rows 5 s apart hold 3 blocks of a 60 s view's rows and 1 of a 300 s view's: untested
    # (14: those of the two views' 18 features that vary in these ticks)
    assert "not tested: 14 features whose windows the ranges are too short for" in " ".join(
        wild.stderr.split()
    )
    # nothing to compare is no verdict: 2, never the 1 that tells a gate to retrain
    none = drift("2030-01-01T00:00..2030-01-01T00:10", "2026-01-01T00:25..2026-01-01T00:30")
    assert none.returncode == 2
    # nor do a few rows give one: two-sample tests on a handful read anything (3 rows: "0 drifted", exit 0)
    few = drift("2026-01-01T00:05..2026-01-01T00:10", "2026-01-01T00:25..2026-01-01T00:26")
    assert (
        few.returncode == 2
        and "--current: 12 of 12 rows (every 5 s) have feature values, too few" in few.stderr
    )
    # nor do many rows of which only a few have values: the ticks end at 00:40, and the widest view
    # (300 s) has none past 00:45 (so 561 rows were compared, 546 of them empty)
    gap = drift("2026-01-01T00:00..2026-01-01T00:20", "2026-01-01T00:39:40..2026-01-01T03:46:40", "20")
    assert gap.returncode == 2 and "--current: 16 of 561 rows (every 20 s) have feature values" in gap.stderr


def test_blocks_of_rows_that_share_ticks_end_the_false_alarms(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # two hours of one stationary process, as feature rows 10 s apart: Evidently's K-S called the
    # 300 s mean drifted (their rows share most of their window); tested in blocks, it is not
    rng = np.random.default_rng(5)

    def hour() -> pd.DataFrame:
        x = pd.Series(rng.normal(size=7200))
        frame = pd.DataFrame({"m300": x.rolling(300).mean(), "m10": x.rolling(10).mean()})
        return frame.iloc[3600::10].reset_index(drop=True)

    ref, cur = hour(), hour()
    plain = drift_report(ref, cur, tmp_path, "plain")
    blocks = row_blocks(
        {"features": ["v300:m300", "v10:m10"], "lookback_s": {"v300": 300, "v10": 10}}, timedelta(seconds=10)
    )
    assert blocks == {"m300": 60, "m10": 2}
    ours = drift_report(ref, cur, tmp_path, "blocks", blocks)
    assert plain.per_column["m300"].drifted and plain.per_column["m300"].method == "K-S p_value"
    assert not ours.per_column["m300"].drifted and ours.drifted == 0 and ours.share == 0.0
    assert ours.per_column["m300"].method == "block K-S p_value (60 rows a block)"
    assert str(ours.per_column["m10"]).startswith("block K-S p_value (2 rows a block) ")
    # a real shift still shows
    shifted = drift_report(ref, cur + 2 * ref.std(), tmp_path, "shifted", blocks)
    assert shifted.drifted == 2

    # a range holding under 5 blocks of a feature can't test it: left out of the share, saying why
    short = drift_report(ref[:200], cur[:200], tmp_path, "short", blocks)  # 200 rows: 4 blocks of 60
    assert short.columns == 1 and set(short.per_column) == {"m10"}
    assert short.untested == {
        "m300": "4 and 4 blocks of 60 rows (twice its window) in the reference and current ranges, "
        "where a test needs 5 in each"
    }
    with pytest.raises(ValueError, match="the ranges are too short to tell any feature's drift"):
        drift_report(ref[["m300"]][:200], cur[["m300"]][:200], tmp_path, "none", blocks)


def test_row_blocks_are_twice_a_views_lookback_in_rows() -> None:
    manifest = {
        "features": ["ticks_60s:ret_std_60s", "ticks_300s:ret_std_300s", "plain:x"],
        "lookback_s": {"ticks_60s": 60.0, "ticks_300s": 300.0},  # "plain": none recorded (an old set)
        "full_feature_names": True,
    }
    blocks = row_blocks(manifest, timedelta(seconds=1))
    assert blocks == {"ticks_60s__ret_std_60s": 120, "ticks_300s__ret_std_300s": 600, "plain__x": 1}
    assert row_blocks(manifest, timedelta(seconds=7))["ticks_60s__ret_std_60s"] == 18  # rounded up


def test_of_features_whose_p_values_tie_the_farther_apart_are_listed_first(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # a block K-S test's least p-value is 0.005 (199 deals): two hours of a shifted market gave 25 of 27
    # features that one, and "most drifted" listed ten of them in the frame's order
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"small": rng.normal(size=400), "big": rng.normal(size=400)})
    cur = pd.DataFrame({"small": rng.normal(1.0, 1, 400), "big": rng.normal(5.0, 1, 400)})
    result = drift_report(ref, cur, tmp_path, "r", {"small": 2, "big": 2})
    small, big = result.per_column["small"], result.per_column["big"]
    assert small.score == big.score == 0.005  # tied at the least p-value there is
    assert big.distance is not None and small.distance is not None and big.distance > small.distance
    assert [name for name, _ in result.most_drifted(2)] == ["big", "small"]
    assert str(big) == f"block K-S p_value (2 rows a block) 0.005 < 0.05, distance {big.distance:.2f}"
