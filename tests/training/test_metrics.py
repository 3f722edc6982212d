"""Test-split metrics (training/metrics.py): the PR-AUC interval over time-linked rows, block lengths."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, f1_score

from training.metrics import (
    beats_share,
    best_f1_threshold,
    block_resamples,
    block_rows,
    bootstrap_pr_auc,
    episodes,
    pr_auc,
    resampled_pr_aucs,
    score,
)


def linked_rows(runs: int = 40, length: int = 30, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores that hold for ``length`` rows at a time, as overlapping windows make them:
    ``runs`` independent draws, each repeated (a spike lasts as long as the windows that see it)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(runs) < 0.2).astype(int)
    p = np.clip(0.3 * y + rng.random(runs) * 0.7, 0, 1)
    return np.repeat(y, length), np.repeat(p, length)


def test_rows_linked_in_time_widen_the_interval_when_drawn_in_blocks() -> None:
    y, p = linked_rows()
    one_by_one = bootstrap_pr_auc(y, p, block=1)
    blocks = bootstrap_pr_auc(y, p, block=30)
    # 40 draws, not 1,200: drawn one by one the rows pass for 30 times the evidence there is
    assert blocks[1] - blocks[0] > 2.5 * (one_by_one[1] - one_by_one[0]), (one_by_one, blocks)
    # the same interval as the 40 draws themselves give, drawn one by one: within a few points
    y40, p40 = y[::30], p[::30]
    own = bootstrap_pr_auc(y40, p40, block=1)
    assert abs((blocks[1] - blocks[0]) - (own[1] - own[0])) < 0.08, (blocks, own)
    assert bootstrap_pr_auc(y, p, block=30) == blocks  # seeded: the same interval every time
    # a block longer than the rows is all of them, every draw the same: a zero-width interval
    low, high = bootstrap_pr_auc(y, p, block=10_000)
    assert low == high == average_precision_score(y, p)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(st.booleans(), st.integers(0, 12)), min_size=2, max_size=120),
    block=st.integers(1, 50),
    seed=st.integers(0, 2**16),
    single=st.booleans(),
)
def test_each_resample_has_sklearns_pr_auc_bit_for_bit(
    rows: list[tuple[bool, int]], block: int, seed: int, single: bool
) -> None:
    """Scores from few values (many ties), float32 as XGBoost gives them or float64: every resample's
    PR-AUC is the very float sklearn gives the resampled rows, and the resamples sklearn can't score
    (one class only) are the ones left out."""
    y = np.array([hit for hit, _ in rows], dtype=int)
    p = np.array([level / 12 for _, level in rows], dtype=np.float32 if single else np.float64)
    q = p[::-1].copy()
    got = resampled_pr_aucs(y, [p, q], block, n=12, seed=seed)
    drawn = [idx for idx in block_resamples(len(y), block, 12, seed) if y[idx].min() != y[idx].max()]
    want = [
        [average_precision_score(y[idx], p[idx]), average_precision_score(y[idx], q[idx])] for idx in drawn
    ]
    assert got.shape == (len(drawn), 2)
    assert got.tolist() == want


@pytest.mark.parametrize(("rows", "block"), [(10, 1), (10, 3), (11, 7), (29, 40), (30, 30)])
def test_each_resample_is_as_many_rows_as_there_are_in_runs_of_the_block(rows: int, block: int) -> None:
    for idx in block_resamples(rows, block, 20, seed=3):
        assert len(idx) == rows and 0 <= idx.min() and idx.max() < rows
        run = min(block, rows)  # the last run cut where the rows end
        starts = idx[::run]
        for start, drawn in zip(starts, np.split(idx, range(run, rows, run)), strict=True):
            assert drawn.tolist() == list(range(start, start + len(drawn)))


def test_the_interval_is_the_middle_95_percent_of_the_resamples_pr_aucs() -> None:
    rng = np.random.default_rng(8)
    y = (rng.random(300) < 0.2).astype(int)
    p = 0.3 * y + rng.random(300) * 0.7
    values = [
        average_precision_score(y[idx], p[idx])
        for idx in block_resamples(len(y), 5, 200, 0)
        if y[idx].min() != y[idx].max()
    ]
    assert len(set(values)) > 150  # distinct enough for each percentile to tell
    assert bootstrap_pr_auc(y, p, block=5) == tuple(np.percentile(values, [2.5, 97.5]))


def test_the_threshold_is_the_cut_with_the_best_f1_and_one_half_without_both_classes() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(400) < 0.2).astype(int)
    p = np.round(np.clip(0.25 * y + rng.random(400) * 0.75, 0, 1), 2)  # ties, as trees give
    cut = best_f1_threshold(y, p)
    assert cut in set(p)  # one of the validation probabilities
    best = max(f1_score(y, p >= t) for t in np.unique(p))
    assert f1_score(y, p >= cut) == best
    assert best_f1_threshold(np.zeros(50, dtype=int), rng.random(50)) == 0.5
    assert best_f1_threshold(np.ones(50, dtype=int), rng.random(50)) == 0.5


def test_resampled_scores_holding_nan_are_refused_as_sklearn_refuses_them() -> None:
    y, p = linked_rows()
    p[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        average_precision_score(y, p)
    with pytest.raises(ValueError, match="NaN or infinity"):
        resampled_pr_aucs(y, [p], block=30)


def test_score_records_its_block_and_pr_auc_is_nan_for_one_class() -> None:
    y, p = linked_rows()
    s = score(y, p, 0.5, block=30)
    assert s.block == 30 and s.pr_auc == average_precision_score(y, p)
    assert s.pr_auc_low <= s.pr_auc <= s.pr_auc_high
    assert np.isnan(pr_auc(np.zeros(10), np.linspace(0, 1, 10)))
    # the share called a spike at the threshold: probabilities at it count
    assert score(np.array([0, 1, 0, 1]), np.array([0.1, 0.5, 0.5, 0.9]), 0.5).flagged == 0.75


def test_block_rows_counts_the_rows_a_stretch_holds() -> None:
    every_second = pd.Series(pd.date_range("2026-01-01", periods=600, freq="1s", tz="UTC"))
    assert block_rows(every_second, timedelta(seconds=300)) == 300
    # three products a second: three rows a second, counted from a time's first row
    three = pd.Series(np.repeat(every_second.to_numpy(), 3))
    assert block_rows(three, timedelta(seconds=300)) == 900
    # a grid every 10 s with an hour's gap in it: a block is still 30 rows, not stretched by the gap
    gappy = pd.concat(
        [
            pd.Series(pd.date_range("2026-01-01 00:00", periods=180, freq="10s", tz="UTC")),
            pd.Series(pd.date_range("2026-01-01 01:30", periods=180, freq="10s", tz="UTC")),
        ]
    )
    assert block_rows(gappy, timedelta(seconds=300)) == 30
    assert block_rows(pd.Series([], dtype="datetime64[ns, UTC]"), timedelta(seconds=300)) == 1


def test_beats_share_tells_a_real_lead_from_one_of_chance() -> None:
    y, p = linked_rows(runs=200)
    rng = np.random.default_rng(5)
    coin = np.repeat(rng.random(200), 30)  # a score that knows nothing
    assert beats_share(y, p, coin, block=30) == 1.0
    assert beats_share(y, coin, p, block=30) == 0.0
    assert beats_share(y, p, p, block=30) == 0.0  # a tie is no win
    # p with noise against p with other noise of the same size (seeded: a pair whose PR-AUCs on these
    # rows differ by little): either wins in some resamples, neither in 95% of them
    noisy = np.random.default_rng(0)
    a = p + np.repeat(noisy.normal(0, 0.15, 200), 30)
    b = p + np.repeat(noisy.normal(0, 0.15, 200), 30)
    assert abs(average_precision_score(y, a) - average_precision_score(y, b)) < 0.05
    assert 0.05 < beats_share(y, a, b, block=30) < 0.95
    assert np.isnan(beats_share(np.zeros(60), p[:60], coin[:60], block=30))


def test_episodes_are_runs_of_rows_no_wider_apart_than_the_gap() -> None:
    t0 = pd.Timestamp("2025-12-06 12:03:25", tz="UTC")
    burst = pd.Series([t0 + pd.Timedelta(seconds=s) for s in range(6)])  # six spikes in 5 s: one
    assert episodes(burst, timedelta(minutes=5)) == 1
    assert episodes(burst.iloc[:0], timedelta(minutes=5)) == 0
    # exactly the gap apart still joins (rows that close share ticks); a microsecond more starts another
    apart = pd.Series([t0, t0 + pd.Timedelta(minutes=5), t0 + pd.Timedelta(minutes=10, microseconds=1)])
    assert episodes(apart, timedelta(minutes=5)) == 2
    # any order, any product: three products spiking in the same minute are one episode
    assert episodes(pd.Series([t0 + pd.Timedelta(minutes=20), t0, t0, t0]), timedelta(minutes=5)) == 2
