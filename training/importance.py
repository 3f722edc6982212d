"""What each model leans on: the validation log loss it adds when one feature's values are shuffled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

if TYPE_CHECKING:  # a type only: `training.report` imports Importance without the models' XGBoost
    from training.models import Model

REPEATS = 3  # shuffles a feature: their spread says how far one shuffle's figure can be trusted
MAX_ROWS = 20_000  # validation rows scored a shuffle (evenly spread); a day's training stays quick


@dataclass(frozen=True)
class Importance:
    """One feature's permutation importance: the log loss added when it is shuffled (mean, std over
    the shuffles). Near 0: the model's probabilities don't depend on it (or another feature carries
    the same thing: correlated features share what they tell)."""

    feature: str
    added: float
    spread: float


def permutation(model: Model, x: pd.DataFrame, y: np.ndarray, seed: int = 0) -> list[Importance]:
    """Every feature of ``x`` by the log loss shuffling it adds to ``model``'s probabilities on these
    rows (the validation split: rows the model did not fit), most first.

    Log loss, not PR-AUC: it is defined on rows without a spike too (a calm validation split), and
    counts a model's confidence, not only its ranking. A shuffle keeps the feature's values, its
    missing ones included, and breaks only their link to the row.
    """
    if len(x) > MAX_ROWS:
        keep = np.linspace(0, len(x) - 1, MAX_ROWS).astype(int)
        x, y = x.iloc[keep], y[keep]
    x = x.reset_index(drop=True)
    base = _loss(model, x, y)
    rng = np.random.default_rng(seed)
    found = []
    for column in x.columns:
        shuffled = x.copy()
        added = []
        for _ in range(REPEATS):
            shuffled[column] = x[column].to_numpy()[rng.permutation(len(x))]
            added.append(_loss(model, shuffled, y) - base)
        found.append(Importance(column, float(np.mean(added)), float(np.std(added))))
    return sorted(found, key=lambda i: -i.added)


def _loss(model: Model, x: pd.DataFrame, y: np.ndarray) -> float:
    """Mean log loss of ``model``'s spike probabilities on ``x`` against ``y`` (either class may be absent)."""
    return float(log_loss(y, np.clip(model.predict_proba(x), 1e-15, 1 - 1e-15), labels=[0, 1]))
