"""The block K-S test: calibrated on rows that share ticks, where a plain K-S test is not; still
finds a shift; exact where nothing moved."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from training.block_ks import block_ks_pvalue, describe, stattest


def window_means(rng: np.random.Generator, window: int, every: int) -> np.ndarray:
    """An hour of a stationary feature: the mean over the last ``window`` s of one value a second,
    read every ``every`` s (as a feature view's rows, `every` s apart, overlap)."""
    x = pd.Series(rng.normal(size=7200))
    return x.rolling(window).mean().iloc[3600::every].to_numpy()


def test_false_alarms_stay_near_the_threshold_where_a_plain_test_raises_them_all_the_time() -> None:
    rng = np.random.default_rng(11)
    block = 2 * 300 // 10  # twice the window, in rows (training.drift.row_blocks)
    pairs = [(window_means(rng, 300, 10), window_means(rng, 300, 10)) for _ in range(40)]
    ours = np.mean([block_ks_pvalue(a, b, block) < 0.05 for a, b in pairs])
    plain = np.mean([ks_2samp(a, b).pvalue < 0.05 for a, b in pairs])
    assert ours <= 0.15, ours  # two hours of one process: ~5% expected
    assert plain >= 0.6, plain  # the same pairs, rows taken as independent (88% in 100 trials)


def test_a_shift_is_found() -> None:
    rng = np.random.default_rng(12)
    found = []
    for _ in range(20):
        a, b = window_means(rng, 60, 10), window_means(rng, 60, 10)
        found.append(block_ks_pvalue(a, b + 2 * a.std(), 12) < 0.05)
    assert np.mean(found) >= 0.9


def test_identical_samples_give_one_and_the_same_rows_the_same_p_value() -> None:
    rng = np.random.default_rng(13)
    a, b = rng.normal(size=400), rng.normal(0.2, 1, size=300)
    assert block_ks_pvalue(a, a.copy(), 10) == 1.0
    assert block_ks_pvalue(a, b, 10) == block_ks_pvalue(a, b, 10)  # a fixed seed
    assert block_ks_pvalue(a, np.array([]), 10) == 1.0
    assert block_ks_pvalue(a, b, 0) == block_ks_pvalue(a, b, 1)  # a block of 0 rows is taken as 1
    # a feature that never moved (every deal's statistic ties the observed one): nothing drifted
    assert block_ks_pvalue(np.full(400, 3.0), np.full(300, 3.0), 10) == 1.0


def test_a_split_no_deal_beats_has_the_smallest_p_value_never_zero() -> None:
    rng = np.random.default_rng(15)
    # 40 + 40 blocks: that one of 199 random deals matches the observed split (or its mirror) is a
    # 1-in-1e20 chance
    low, high = rng.normal(size=400), rng.normal(10, 1, size=400)
    assert block_ks_pvalue(low, high, 10) == 1 / 200  # (1 + no deal at least as extreme) / (199 + 1)


def test_one_row_blocks_agree_with_the_plain_test_on_independent_rows() -> None:
    rng = np.random.default_rng(14)
    for shift in (0.0, 0.1, 0.2, 0.4):
        a, b = rng.normal(size=500), rng.normal(shift, 1, size=400)
        assert abs(block_ks_pvalue(a, b, 1) - ks_2samp(a, b).pvalue) < 0.06


def test_evidently_names_it_for_people() -> None:
    assert stattest(60) == "block_ks_60" and stattest(60) == "block_ks_60"  # registered once
    assert describe("block_ks_60") == "block K-S p_value (60 rows a block)"
    assert describe("block_ks_1") == "block K-S p_value (1 row a block)"
    assert describe("K-S p_value") == "K-S p_value"
    assert describe("block_ks_custom") == "block_ks_custom"  # a name of ours only with a number
