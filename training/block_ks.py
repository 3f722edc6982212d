"""A two-sample K-S test for rows that share ticks: blocks of consecutive rows are permuted, not rows.

Feature rows a few seconds apart describe overlapping windows (two rows 10 s apart share 290 s of a
300 s window), so a test that counts them as independent draws takes an hour of them for hundreds of
observations where there are a dozen. On two hours of the same stationary process Evidently's K-S
test called a 300 s feature drifted in each of 8 trials (p down to 1e-24), its Wasserstein distance
(rows 1 s apart) in each of 4, and 44% of the features on average (docs/decisions.md). Here the K-S
statistic is compared with its values when whole blocks of consecutive rows (twice the feature's
window long: `training.drift.row_blocks`) are dealt between the two samples at random: rows within a
block stay together, so their overlap is kept in the null.

The statistic is taken at the pooled rows' quantiles (at most ``GRID`` points), the same for the
observed split and every permuted one, so the permutation p-value is exact for that statistic.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

# blocks a sample needs: b + b blocks deal C(2b, b) ways, each statistic shared with its mirror deal
# (samples of equal size), so the smallest p-value is 2 / C(2b, b): 0.1 at 3 + 3, 0.029 at 4 + 4 (a
# 0.05 threshold barely reachable through 199 random deals), 0.008 at 5 + 5
MIN_BLOCKS = 5
PERMUTATIONS = 199  # p-values in steps of 0.005: plenty for a 0.05 threshold
GRID = 128
SEED = 0  # a fixed seed: the same rows, the same p-values (reports are compared across runs)


def block_ks_pvalue(
    reference: np.ndarray, current: np.ndarray, block: int, permutations: int = PERMUTATIONS
) -> float:
    """P-value of the K-S statistic between ``reference`` and ``current`` (each in time order) under
    random dealing of blocks of ``block`` consecutive rows between them."""
    reference, current = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    block = max(1, int(block))
    blocks_ref = math.ceil(len(reference) / block)
    blocks_cur = math.ceil(len(current) / block)
    if blocks_ref == 0 or blocks_cur == 0:
        return 1.0
    values = np.concatenate([reference, current])
    grid = np.unique(np.quantile(values, np.linspace(0, 1, GRID + 1)[1:], method="inverted_cdf"))
    # counts[b, g]: rows of block b at or below grid point g (a block never spans the two samples)
    owner = np.concatenate(
        [np.arange(len(reference)) // block, blocks_ref + np.arange(len(current)) // block]
    )
    n_blocks = blocks_ref + blocks_cur
    width = len(grid) + 1
    cell = owner * width + np.searchsorted(grid, values, side="left")
    below = np.bincount(cell, minlength=n_blocks * width).reshape(n_blocks, width)
    counts = np.cumsum(below, axis=1)[:, :-1].astype(float)
    sizes = np.bincount(owner, minlength=n_blocks).astype(float)

    def statistic(deal: np.ndarray) -> np.ndarray:
        """max over the grid of |F_ref - F_cur| for each row of ``deal`` (1.0 marks a reference block)."""
        ref_counts, ref_rows = deal @ counts, deal @ sizes
        cur_counts, cur_rows = counts.sum(axis=0) - ref_counts, sizes.sum() - ref_rows
        gap = ref_counts / ref_rows[:, None] - cur_counts / cur_rows[:, None]
        return np.asarray(np.abs(gap).max(axis=1))

    observed = statistic((np.arange(n_blocks) < blocks_ref).astype(float)[None, :])[0]
    rng = np.random.default_rng(SEED)
    deals = rng.permuted(np.tile(np.arange(n_blocks) < blocks_ref, (permutations, 1)), axis=1)
    permuted = statistic(deals.astype(float))
    # ties count as at least as extreme (a tolerance for the sums' rounding): the conservative side
    return float((1 + np.sum(permuted >= observed - 1e-9)) / (permutations + 1))


PREFIX = "block_ks_"


def describe(method: str) -> str:
    """What Evidently's report names ``method``, said for people: a block K-S test's name (which is
    all a report's metric keeps) becomes "block K-S p_value (N rows a block)"; others are kept."""
    if not method.startswith(PREFIX) or not method[len(PREFIX) :].isdigit():
        return method
    block = int(method[len(PREFIX) :])
    return f"block K-S p_value ({block} {'rows' if block > 1 else 'row'} a block)"


def stattest(block: int) -> str:
    """The name of an Evidently stattest running this test with blocks of ``block`` rows (registered
    on first use: Evidently names a column's method by a registered name, not a function)."""
    with warnings.catch_warnings():  # evidently's import trips numpy / litestar deprecation warnings
        warnings.simplefilter("ignore")
        from evidently.legacy.calculations.stattests.registry import (
            StatTest,
            _registered_stat_tests,
            register_stattest,
        )
        from evidently.legacy.core import ColumnType

    block = max(1, int(block))
    name = f"{PREFIX}{block}"
    if name not in _registered_stat_tests:

        def test(
            reference: pd.Series, current: pd.Series, feature_type: object, threshold: float
        ) -> tuple[float, bool]:
            p = block_ks_pvalue(reference.to_numpy(), current.to_numpy(), block)
            return p, p < threshold

        register_stattest(
            StatTest(
                name=name,
                display_name=describe(name),
                allowed_feature_types=[ColumnType.Numerical],
                default_threshold=0.05,
            ),
            test,
        )
    return name
