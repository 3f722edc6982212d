"""What `tickstore train` draws into MLflow beside the scores."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from PIL import Image

from training.importance import Importance
from training.report import Fold
from training.tracking import importance_plot, walk_forward_plot

NAN = float("nan")


def test_the_walk_forward_plot_draws_folds_without_rows_or_spikes(tmp_path: Path) -> None:
    t = datetime(2025, 12, 6, tzinfo=UTC)
    names = ("zscore", "logreg", "xgboost")
    folds = [
        Fold(t, t, 900, 300, 30, 3, dict(zip(names, (0.2, 0.3, 0.25), strict=True))),
        Fold(t, t, 1200, 300, 0, 0, dict.fromkeys(names, NAN)),  # no spike: no PR-AUC, no point
        Fold(pd.NaT, pd.NaT, 0, 0, 0, 0, dict.fromkeys(names, NAN), "under 50 rows"),  # no rows at all
    ]
    path = walk_forward_plot(folds, tmp_path)
    assert path == tmp_path / "walk_forward.png" and Image.open(path).size[0] > 400


def test_the_importance_plot_draws_the_top_features(tmp_path: Path) -> None:
    found = [Importance(f"feature_{i}", 0.5 / (i + 1), 0.01) for i in range(27)]
    found.append(Importance("worse_than_none", -0.002, 0.001))  # a shuffle can help by chance
    path = importance_plot(found, "honest logreg", tmp_path, top=15)
    assert path == tmp_path / "permutation_importance.png"
    width, height = Image.open(path).size
    assert width > 400 and height > 400  # fifteen bars a row each
