"""Test-split metrics: PR-AUC with a bootstrap interval, ROC-AUC, thresholded scores, Brier, base rate."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)


@dataclass(frozen=True)
class Scores:
    """One model on one split."""

    pr_auc: float
    pr_auc_low: float  # bootstrap 95% interval
    pr_auc_high: float
    roc_auc: float
    f1: float
    precision: float
    recall: float
    threshold: float  # probability cut, chosen on validation
    brier: float
    base_rate: float
    rows: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability cut that maximizes F1 on (validation) labels ``y``."""
    if len(np.unique(y)) < 2:  # no spikes (or only spikes) in validation: nothing to tune on
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    if len(thresholds) == 0:
        return 0.5
    return float(thresholds[int(np.argmax(f1[:-1]))])


def bootstrap_pr_auc(y: np.ndarray, p: np.ndarray, n: int = 200, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of PR-AUC over ``n`` resamples of the rows (seeded: reproducible)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        values.append(average_precision_score(y[idx], p[idx]))
    if not values:
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def score(y: np.ndarray, p: np.ndarray, threshold: float) -> Scores:
    """Every metric of probabilities ``p`` against labels ``y`` at ``threshold``."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    both = y.min() != y.max()
    decided = (p >= threshold).astype(int)
    low, high = bootstrap_pr_auc(y, p) if both else (float("nan"), float("nan"))
    return Scores(
        pr_auc=float(average_precision_score(y, p)) if both else float("nan"),
        pr_auc_low=low,
        pr_auc_high=high,
        roc_auc=float(roc_auc_score(y, p)) if both else float("nan"),
        f1=float(f1_score(y, decided, zero_division=0)),
        precision=float(precision_score(y, decided, zero_division=0)),
        recall=float(recall_score(y, decided, zero_division=0)),
        threshold=float(threshold),
        brier=float(brier_score_loss(y, p)),
        base_rate=float(y.mean()),
        rows=len(y),
    )
