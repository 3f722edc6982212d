"""What a `tickstore train` run found: each model's scores, and which one, if any, becomes champion."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from training.importance import Importance
from training.metrics import Scores

# a model replaces the z-score rule only if it beats it in this share of resamples of the validation rows
PROMOTE_SHARE = 0.95
# ... and only on a validation split whose spikes come in this many separate episodes (`episodes`): a
# model ahead in each of k independent episodes could be so by chance with probability 2^-k, under 5%
# from 5 on. With fewer, every resample holding spikes holds the same ones, and agrees.
PROMOTE_EPISODES = 5


@dataclass
class ModelResult:
    """One model of a run: its validation PR-AUC, its test scores, and where MLflow keeps it."""

    name: str
    validation_pr_auc: float
    test: Scores
    run_id: str = ""
    model_uri: str = ""  # the logged model (models:/m-...)
    # the share of block resamples of the validation rows in which it beat the z-score rule's PR-AUC
    beats_rule: float = float("nan")
    trees: int | None = None  # XGBoost: the trees early stopping kept
    # every feature by the validation log loss shuffling it adds, most first (`importance.permutation`)
    importance: list[Importance] = field(default_factory=list)


@dataclass
class Fold:
    """One walk-forward fold: its validation rows' span and spikes, and each model's PR-AUC on them."""

    start: datetime  # the validation rows' first and last times
    end: datetime
    train_rows: int
    rows: int  # validation rows
    spikes: int
    episodes: int  # separate stretches the spikes come in (`metrics.episodes`): the evidence they hold
    pr_auc: dict[str, float] = field(default_factory=dict)  # model -> PR-AUC; NaN where it can't be told
    skipped: str = ""  # why the fold was not scored ("under 50 rows"), else empty

    @property
    def base_rate(self) -> float:
        """The share of the fold's validation rows that are spikes: a PR-AUC's chance level."""
        return self.spikes / self.rows if self.rows else float("nan")


@dataclass
class TrainReport:
    """A run's results, spike counts and champion, as `tickstore train` prints them."""

    snapshot: int
    threshold: float
    rows: dict[str, int]
    results: list[ModelResult] = field(default_factory=list)
    spikes: dict[str, int] = field(default_factory=dict)  # split -> rows labeled a spike (honest labels)
    leaky: list[ModelResult] = field(default_factory=list)
    champion: str | None = None
    champion_version: str | None = None
    drift_share: dict[str, float] = field(default_factory=dict)
    walk_forward: list[Fold] = field(default_factory=list)  # `--folds`: purged walk-forward folds

    def rule(self) -> ModelResult | None:
        """The z-score rule's result: the baseline a model must beat to be promoted."""
        return next((r for r in self.results if r.name == "zscore"), None)

    def best_trained(self) -> ModelResult | None:
        """The trained model (not the z-score rule) with the best validation PR-AUC; NaN ranks last."""
        candidates = [r for r in self.results if r.name != "zscore" and r.run_id]
        if not candidates:
            return None
        return max(candidates, key=lambda r: np.nan_to_num(r.validation_pr_auc, nan=-1))


def promotable(report: TrainReport) -> ModelResult | None:
    """The trained model to register as champion, or None: the best on validation PR-AUC, if it is
    ahead of the z-score rule, in `PROMOTE_SHARE` of the resamples, on `PROMOTE_EPISODES` episodes."""
    rule, best = report.rule(), report.best_trained()
    if rule is None or best is None:
        return None
    # NaN (a validation split without spikes) never wins, nor does a lead the validation rows can't
    # tell from chance
    if not (
        best.validation_pr_auc > np.nan_to_num(rule.validation_pr_auc, nan=-1)
        and best.beats_rule >= PROMOTE_SHARE
        and report.spikes.get("validation_episodes", 0) >= PROMOTE_EPISODES
    ):
        return None
    return best
