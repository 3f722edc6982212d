"""Which trained model `train` registers as champion: ahead of the z-score rule, in 95% of the
validation resamples, on spikes of five separate episodes."""

from __future__ import annotations

import pytest

from training.metrics import Scores
from training.report import PROMOTE_EPISODES, ModelResult, TrainReport, promotable

NAN = float("nan")
TEST = Scores(0.2, 0.1, 0.3, 0.6, 0.2, 0.3, 0.4, 0.5, 0.04, 0.05, 100)


def report(rule: float, logreg: float, share: float, episodes: int) -> TrainReport:
    """A run whose logreg scores ``logreg`` on validation against the rule's ``rule``, ahead in
    ``share`` of the resamples; XGBoost behind both."""
    return TrainReport(
        snapshot=1,
        threshold=1e-4,
        rows={"train": 700, "validation": 150, "test": 150},
        results=[
            ModelResult("zscore", rule, TEST, run_id="r0"),
            ModelResult("logreg", logreg, TEST, run_id="r1", beats_rule=share),
            ModelResult("xgboost", 0.1, TEST, run_id="r2", beats_rule=0.0),
        ],
        spikes={"train": 35, "validation": 20, "test": 8, "validation_episodes": episodes},
    )


def test_a_steady_lead_on_enough_episodes_is_promoted() -> None:
    best = promotable(report(0.30, 0.40, 0.97, PROMOTE_EPISODES))
    assert best is not None and best.name == "logreg"


@pytest.mark.parametrize(
    ("rule", "logreg", "share", "episodes"),
    [
        (0.30, 0.40, 0.97, PROMOTE_EPISODES - 1),  # one episode too few: every resample agrees anyway
        (0.004, 0.005, 1.0, 1),  # the recordings' 10:07-12:41: 6 spikes in 5 s, ahead in every resample
        (0.30, 0.40, 0.94, 20),  # a lead the resamples can't tell from chance
        (0.40, 0.40, 1.0, 20),  # a tie
        (NAN, NAN, NAN, 0),  # no spike in validation
    ],
)
def test_no_champion_without_a_lead_validation_can_show(
    rule: float, logreg: float, share: float, episodes: int
) -> None:
    assert promotable(report(rule, logreg, share, episodes)) is None


def test_runs_that_counted_no_episodes_promote_nothing() -> None:
    rep = report(0.30, 0.40, 0.97, PROMOTE_EPISODES)
    del rep.spikes["validation_episodes"]
    assert promotable(rep) is None
