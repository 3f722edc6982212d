"""Evidently data-drift and data-quality reports between two sets of feature rows."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

META = ("product_id", "event_timestamp", "fwd_vol", "fwd_returns", "label")


@dataclass(frozen=True)
class DriftResult:
    """What drifted, and where the reports are."""

    drifted: int
    columns: int
    share: float
    per_column: dict[str, float]  # the test's p-value (or distance) per feature
    html: Path
    json: Path


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, out: Path, name: str) -> DriftResult:
    """Data drift + data summary (quality) presets over the feature columns; HTML and JSON in ``out``."""
    with warnings.catch_warnings():  # evidently's import trips numpy / litestar deprecation warnings
        warnings.simplefilter("ignore")
        from evidently import Report
        from evidently.presets import DataDriftPreset, DataSummaryPreset

    columns = [
        c
        for c in reference.columns
        if c not in META and c in current.columns and _varies(reference[c], current[c])
    ]
    if not columns:
        raise ValueError("no feature varies in these rows: nothing to compare")
    snapshot = Report([DataDriftPreset(), DataSummaryPreset()]).run(
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
    per_column = {
        str(m["metric_name"]).split("column=")[1].split(",")[0]: float(m["value"])
        for m in result["metrics"]
        if str(m.get("metric_name", "")).startswith("ValueDrift(")
    }
    return DriftResult(
        drifted=int(count["value"]["count"]),
        columns=len(columns),
        share=float(count["value"]["share"]),
        per_column=per_column,
        html=html,
        json=js,
    )


def _varies(reference: pd.Series, current: pd.Series) -> bool:
    """False for a column (numerically) constant across both frames: it cannot drift, and Evidently's
    histograms fail on a range too small for their bins."""
    both = pd.concat([reference, current]).astype(float).dropna()
    if both.empty:
        return False
    spread = float(both.max() - both.min())
    return spread > 1e-9 * max(1.0, float(both.abs().max()))
