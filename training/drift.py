"""Evidently data-drift and data-quality reports between two sets of feature rows."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from training.block_ks import MIN_BLOCKS, describe, stattest
from training.dataset import feature_columns

META = ("product_id", "event_timestamp", "fwd_vol", "fwd_returns", "label")


# Evidently's tests whose score is a p-value (drift below the threshold); every other score is a
# distance (drift at or above it). Left to pick, Evidently takes K-S for numeric columns of up to 1,000
# rows and the normed Wasserstein distance above that; given row blocks, tickstore's block K-S.
P_VALUE_TESTS = frozenset(
    {
        "Anderson-Darling",
        "Cramer-von Mises",
        "Epps-Singleton",
        "Fisher's Exact test",
        "Mann-Whitney U-rank test",
        "empirical_mmd",
        "g_test",
        "t_test",
    }
)


@dataclass(frozen=True)
class ColumnDrift:
    """One feature's drift test, as Evidently ran it."""

    method: str  # Evidently's name for the test, e.g. "K-S p_value", "Wasserstein distance (normed)"
    threshold: float
    score: float
    # set for a feature with values in one set of rows only: drifted without a test (see drift_report)
    one_sided: str = ""
    # the largest gap between the two sets' empirical distributions (0-1): how far apart they are, where
    # p-values tie (a block K-S test's least is 0.005, which two hours of a shifted market gave 25 of 27
    # features, so "most drifted" listed ten of them in no order)
    distance: float | None = None

    @property
    def p_value(self) -> bool:
        return "p_value" in self.method or self.method in P_VALUE_TESTS

    @property
    def drifted(self) -> bool:
        if self.one_sided:
            return True
        return self.score < self.threshold if self.p_value else self.score >= self.threshold

    @property
    def severity(self) -> float:
        """How far past (> 1) or short of (< 1) its threshold the score is: orders columns by drift."""
        if self.one_sided:
            return float("inf")
        if self.p_value:
            return self.threshold / self.score if self.score > 0 else float("inf")
        return self.score / self.threshold if self.threshold > 0 else float("inf")

    def __str__(self) -> str:
        if self.one_sided:
            return self.one_sided
        relation = "<" if self.score < self.threshold else ">="
        said = f"{self.method} {self.score:.3g} {relation} {self.threshold:g}"
        if self.distance is not None and self.method.startswith("block K-S"):
            said += f", distance {self.distance:.2f}"
        return said


@dataclass(frozen=True)
class DriftResult:
    """What drifted, and where the reports are."""

    drifted: int
    columns: int
    share: float
    per_column: dict[str, ColumnDrift]
    html: Path
    json: Path
    # features left out of the test and the share: a range holding too few of their blocks (the reason)
    untested: dict[str, str] = field(default_factory=dict)

    def most_drifted(self, n: int) -> list[tuple[str, ColumnDrift]]:
        """The ``n`` features furthest past their threshold, drifted ones first; of equal scores, the
        farther apart first."""
        return sorted(self.per_column.items(), key=lambda kv: (-kv[1].severity, -(kv[1].distance or 0.0)))[:n]


def row_blocks(manifest: Mapping[str, Any], every: timedelta) -> dict[str, int]:
    """Rows a block for each feature column of a training set (its manifest, as JSON) of rows ``every``
    apart per product: twice its view's lookback. Rows closer than a window share ticks; blocks twice
    as long held a stationary null's false alarms near 5% (2-9% in 100 trials each, against 6-13% for
    blocks one window long: a block's last rows still share ticks with the next one's first)."""
    refs = list(manifest["features"])
    columns = feature_columns(refs, bool(manifest.get("full_feature_names", False)))
    lookback = manifest.get("lookback_s", {})
    step = every.total_seconds()
    return {
        column: max(1, math.ceil(2 * float(lookback.get(ref.split(":", 1)[0], 0.0)) / step))
        for ref, column in zip(refs, columns, strict=True)
    }


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out: Path,
    name: str,
    blocks: Mapping[str, int] | None = None,
) -> DriftResult:
    """Data drift + data summary (quality) presets over the feature columns; HTML and JSON in ``out``.

    A column with a block size in ``blocks`` (rows, `row_blocks`) is tested by tickstore's block K-S
    test (training/block_ks.py), which allows for rows that share ticks; the others as Evidently
    picks. Rows are taken per product in time order, where the frames say so.
    """
    order = [c for c in ("product_id", "event_timestamp") if c in reference.columns and c in current.columns]
    if order and blocks:  # a block is consecutive rows of one product
        reference = reference.sort_values(order, kind="stable")
        current = current.sort_values(order, kind="stable")
    with warnings.catch_warnings():  # evidently's import trips numpy / litestar deprecation warnings
        warnings.simplefilter("ignore")
        from evidently import Report
        from evidently.presets import DataDriftPreset, DataSummaryPreset

    features = [c for c in reference.columns if c not in META and c in current.columns]
    # A feature with values on one side only (order-book sizes recorded in one range, not in the
    # other) is the largest drift there is, and Evidently refuses the empty column outright: it
    # failed `tickstore train` after every model was fitted, and `monitor drift` with no verdict.
    one_sided: dict[str, ColumnDrift] = {}
    for c in features:
        side, other, share = _one_side(reference[c], current[c])
        if side:
            note = f"no values in the {side} rows ({share:.0%} of the {other} rows had one)"
            one_sided[c] = ColumnDrift("", 0.0, 0.0, one_sided=note)
    columns = [c for c in features if c not in one_sided and _varies(reference[c], current[c])]
    untested = {
        c: why
        for c in columns
        if blocks and c in blocks and (why := _too_few(reference[c], current[c], blocks[c]))
    }
    columns = [c for c in columns if c not in untested]
    if not columns and untested and not one_sided:
        raise ValueError(
            f"the ranges are too short to tell any feature's drift ({next(iter(untested.values()))}): "
            "widen them"
        )
    if not columns:
        if one_sided:
            raise ValueError(
                "no feature has values in both sets of rows to compare (values on one side only: "
                f"{', '.join(one_sided)})"
            )
        raise ValueError("no feature varies in these rows: nothing to compare")
    methods = {c: stattest(blocks[c]) for c in columns if blocks and c in blocks}
    preset = DataDriftPreset(per_column_method=methods) if methods else DataDriftPreset()
    snapshot = Report([preset, DataSummaryPreset()]).run(
        current_data=current[columns].astype(float), reference_data=reference[columns].astype(float)
    )
    out.mkdir(parents=True, exist_ok=True)
    html, js = out / f"{name}.html", out / f"{name}.json"
    snapshot.save_html(str(html))
    result = snapshot.dict()
    js.write_text(json.dumps(result, indent=1, default=str))
    count = next(
        m for m in result["metrics"] if str(m.get("metric_name", "")).startswith("DriftedColumnsCount")
    )
    per_column: dict[str, ColumnDrift] = {}
    for m in result["metrics"]:
        if str(m.get("metric_name", "")).startswith("ValueDrift("):
            test = _arguments(m["metric_name"])
            column = test["column"]
            per_column[column] = ColumnDrift(
                describe(test["method"]),
                float(test["threshold"]),
                float(m["value"]),
                distance=_distance(reference[column], current[column]),
            )
    per_column.update(one_sided)
    drifted = int(count["value"]["count"]) + len(one_sided)
    return DriftResult(
        drifted=drifted,
        columns=len(columns) + len(one_sided),
        share=drifted / (len(columns) + len(one_sided)),
        per_column=per_column,
        html=html,
        json=js,
        untested=untested,
    )


def _too_few(reference: pd.Series, current: pd.Series, block: int) -> str:
    """Why a feature's blocks of ``block`` rows are too few in either range to test, or ""."""
    held = [math.ceil(int(rows.notna().sum()) / block) for rows in (reference, current)]
    if min(held) >= MIN_BLOCKS:
        return ""
    return (
        f"{held[0]} and {held[1]} blocks of {block} rows (twice its window) in the reference and "
        f"current ranges, where a test needs {MIN_BLOCKS} in each"
    )


def _distance(reference: pd.Series, current: pd.Series) -> float | None:
    """The two-sample K-S statistic between the values of two columns (None without values in both)."""
    from scipy.stats import ks_2samp

    a, b = reference.dropna().astype(float), current.dropna().astype(float)
    return float(ks_2samp(a, b).statistic) if len(a) and len(b) else None


def _arguments(metric_name: str) -> dict[str, str]:
    """``ValueDrift(column=x,method=K-S p_value,threshold=0.05)`` -> its arguments by name."""
    inner = metric_name[metric_name.index("(") + 1 : metric_name.rindex(")")]
    return dict(part.split("=", 1) for part in inner.split(","))


def _one_side(reference: pd.Series, current: pd.Series) -> tuple[str, str, float]:
    """("current", "reference", share) when only the reference rows have values of a feature (share:
    of its rows that do), the other way round, or ("", "", 0) when both or neither have any."""
    in_reference, in_current = reference.notna(), current.notna()
    if in_reference.any() and not in_current.any():
        return "current", "reference", float(in_reference.mean())
    if in_current.any() and not in_reference.any():
        return "reference", "current", float(in_current.mean())
    return "", "", 0.0


def _varies(reference: pd.Series, current: pd.Series) -> bool:
    """False for a column (numerically) constant across both frames: it cannot drift, and Evidently's
    histograms fail on a range too small for their bins."""
    both = pd.concat([reference, current]).astype(float).dropna()
    if both.empty:
        return False
    spread = float(both.max() - both.min())
    return spread > 1e-9 * max(1.0, float(both.abs().max()))
