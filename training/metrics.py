"""Test-split metrics: PR-AUC with a bootstrap interval, ROC-AUC, thresholded scores, Brier, base rate."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
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
    pr_auc_low: float  # bootstrap 95% interval (rows resampled in blocks: see bootstrap_pr_auc)
    pr_auc_high: float
    roc_auc: float
    f1: float
    precision: float
    recall: float
    threshold: float  # probability cut, chosen on validation
    brier: float
    base_rate: float
    rows: int
    block: int = 1  # rows drawn together by the bootstrap (a stretch of time: see block_rows)
    flagged: float = float("nan")  # the share of rows called a spike at ``threshold``

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


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """PR-AUC (average precision) of ``p`` against labels ``y``; NaN when ``y`` has one class only."""
    y = np.asarray(y).astype(int)
    return float(average_precision_score(y, p)) if len(y) and y.min() != y.max() else float("nan")


def block_rows(times: pd.Series, span: timedelta) -> int:
    """How many rows a stretch of ``span`` holds, as a block length: the median, over the rows, of the
    rows timed in [t, t + span) from each one's time t. Counted, not assumed from the grid's step,
    so gaps in the data and the number of products are taken into account."""
    if times.empty:
        return 1
    us = (pd.to_datetime(times, utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(microseconds=1)
    t = np.sort(us.to_numpy(dtype=float))  # exact: microseconds since 1970 are below 2**53
    starts = np.searchsorted(t, t, side="left")  # rows at one time (one per product) count from the first
    ends = np.searchsorted(t, t + span / timedelta(microseconds=1), side="left")
    return max(1, int(np.median(ends - starts)))


def episodes(times: pd.Series, gap: timedelta) -> int:
    """How many separate episodes the rows at ``times`` make: runs in which each row lies within
    ``gap`` of the one before it (any product), a wider gap starting the next run. Rows closer than
    the label's horizon or the widest feature window share ticks, so a run is one piece of evidence,
    however many rows it has."""
    if times.empty:
        return 0
    t = np.sort(pd.to_datetime(times, utc=True).to_numpy())
    return 1 + int((np.diff(t) > np.timedelta64(gap)).sum())


def block_resamples(rows: int, block: int, n: int, seed: int) -> Iterator[np.ndarray]:
    """``n`` moving-block resamples of ``rows`` rows in time order, as row indices (seeded): runs of
    ``block`` consecutive rows from random starts, as many as cover the rows, the last one cut."""
    if rows == 0:
        return
    rng = np.random.default_rng(seed)
    block = min(max(block, 1), rows)
    runs = -(-rows // block)
    for _ in range(n):
        starts = rng.integers(0, rows - block + 1, runs)
        yield (starts[:, None] + np.arange(block)).ravel()[:rows]


def resampled_pr_aucs(
    y: np.ndarray, scores: Sequence[np.ndarray], block: int = 1, n: int = 200, seed: int = 0
) -> np.ndarray:
    """The PR-AUC of each of ``scores`` on each of ``n`` block resamples of the rows (`block_resamples`),
    one row a resample holding both classes (the others dropped), one column a score.

    Each equals sklearn's `average_precision_score` of the resampled rows, bit for bit: the same
    counts at the same thresholds, the same arithmetic on them. Asked per resample, sklearn checked
    and sorted its input again each time: 200 resamples of each model's scores, and of the rule's
    beside them, were 12 s of a 45 s `tickstore train`. Here each score is sorted once and a resample
    is a count of each row (how often it was drawn) summed per distinct score.
    """
    y = np.asarray(y).astype(int)
    ranked = [_Ranked(y, np.asarray(p)) for p in scores]
    out = [
        [r.pr_auc(np.bincount(idx, minlength=len(y))) for r in ranked]
        for idx in block_resamples(len(y), block, n, seed)
        if y[idx].min() != y[idx].max()
    ]
    return np.array(out, dtype=float).reshape(len(out), len(ranked))


class _Ranked:
    """One score's rows in descending order, grouped by equal score (sklearn's thresholds)."""

    def __init__(self, y: np.ndarray, p: np.ndarray) -> None:
        if not np.isfinite(p).all():  # as sklearn refuses them: NaN would sort as a score of its own
            raise ValueError("the scores hold NaN or infinity")
        self.order = np.argsort(p, kind="stable")[::-1]
        ranked = p[self.order]
        self.group = np.concatenate([[0], np.cumsum(ranked[1:] != ranked[:-1])])
        self.groups = int(self.group[-1]) + 1 if len(p) else 0
        self.positive = y[self.order].astype(float)

    def pr_auc(self, counts: np.ndarray) -> float:
        """Average precision of the rows each drawn ``counts`` times, as sklearn computes it."""
        drawn = counts[self.order].astype(float)
        per_group = np.bincount(self.group, weights=drawn, minlength=self.groups)
        hits = np.bincount(self.group, weights=drawn * self.positive, minlength=self.groups)
        kept = per_group > 0  # thresholds are the scores of rows drawn
        tps = np.cumsum(hits[kept])  # whole numbers: exact in float64
        ps = np.cumsum(per_group[kept])
        precision = tps / ps  # every kept group was drawn: ps > 0
        recall = tps / tps[-1]
        precision = np.concatenate([precision[::-1], [1.0]])
        recall = np.concatenate([recall[::-1], [0.0]])
        return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def bootstrap_pr_auc(
    y: np.ndarray, p: np.ndarray, block: int = 1, n: int = 200, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of PR-AUC over ``n`` resamples of the rows (seeded: reproducible).

    The rows are drawn in runs of ``block`` consecutive ones (a moving-block bootstrap): rows close in
    time share ticks (overlapping label horizons and feature windows), so they are not independent,
    and drawn one by one they made the interval several times too narrow (`block=1` does that).
    """
    values = resampled_pr_aucs(y, [p], block, n, seed)[:, 0]
    if not len(values):
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def beats_share(
    y: np.ndarray, p: np.ndarray, p_rule: np.ndarray, block: int = 1, n: int = 200, seed: int = 0
) -> float:
    """The share of resamples of the rows in which ``p`` has a higher PR-AUC than ``p_rule``: the same
    resamples for both (paired), drawn in blocks as for the interval. NaN when none holds both classes."""
    both = resampled_pr_aucs(y, [p, p_rule], block, n, seed)
    return float(np.mean(both[:, 0] > both[:, 1])) if len(both) else float("nan")


def score(y: np.ndarray, p: np.ndarray, threshold: float, block: int = 1) -> Scores:
    """Every metric of probabilities ``p`` against labels ``y`` at ``threshold``; rows in time order,
    resampled in runs of ``block`` for the PR-AUC interval."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    both = y.min() != y.max()
    decided = (p >= threshold).astype(int)
    low, high = bootstrap_pr_auc(y, p, block) if both else (float("nan"), float("nan"))
    return Scores(
        pr_auc=pr_auc(y, p),
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
        block=block,
        flagged=float(decided.mean()) if len(y) else float("nan"),
    )
