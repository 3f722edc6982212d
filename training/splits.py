"""Chronological splits with a purge gap, so no label window reaches into the next split."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pandas as pd


def chronological(
    frame: pd.DataFrame,
    purge: timedelta,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    time_col: str = "event_timestamp",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train / validation / test in time order; rows within ``purge`` before a boundary are dropped.

    The fractions are of the rows, not of the time span: recorded data has gaps, and a validation
    span that fell in one had no rows (9,760 labeled rows were "too few to train"). A label at t
    looks at (t, t + H]: with purge >= H, no training label sees validation data and no validation
    label sees test data.
    """
    if abs(sum(fractions) - 1) > 1e-9:
        raise ValueError("fractions must sum to 1")
    times = frame[time_col]
    if frame.empty:
        return frame, frame, frame
    ordered = times.sort_values(ignore_index=True)
    n = len(ordered)
    cut1 = ordered.iloc[min(int(n * fractions[0]), n - 1)]
    cut2 = ordered.iloc[min(int(n * (fractions[0] + fractions[1])), n - 1)]
    train = frame[times < cut1 - purge]
    val = frame[(times >= cut1) & (times < cut2 - purge)]
    test = frame[times >= cut2]
    return train, val, test


# Spikes the rows held out for early stopping should hold: fewer, and PR-AUC moves more from one tree
# to the next by chance than by fit (on the recordings' 06:12-08:35, 7 spikes in 876 rows kept 2 trees;
# 0 spikes made every round's PR-AUC NaN, and NaN kept 1 tree)
STOP_SPIKES = 30


def early_stopping(
    frame: pd.DataFrame,
    purge: timedelta,
    spikes: np.ndarray | None = None,
    fraction: float = 0.15,
    most: float = 0.5,
    time_col: str = "event_timestamp",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows as (fit, stop): the last rows in time held out for a model to stop early on, and
    the rows before them less ``purge``, so no fit label sees a stop row.

    The last ``fraction`` of the rows is held out or, given the rows' ``spikes`` (0 / 1, in the
    frame's order), as many of the last rows as hold `STOP_SPIKES` spikes, if that is more, up to
    ``most`` of the rows: spikes come in bursts, and the last 15% of a recording's training rows could
    hold none. Early-stopped on the validation split, XGBoost was tuned on the rows that then chose
    the champion and the threshold: its validation PR-AUC came out above the others' while its test
    PR-AUC did not.
    """
    if frame.empty:
        return frame, frame
    times = frame[time_col]
    order = times.argsort(kind="stable").to_numpy()
    n = len(frame)
    held = n - min(int(n * (1 - fraction)), n - 1)
    if spikes is not None:
        # spikes among the last k rows, for k = 1..n: the fewest rows holding enough of them
        last = np.cumsum(np.asarray(spikes)[order][::-1])
        held = max(held, min(int(np.searchsorted(last, STOP_SPIKES)) + 1, int(n * most)))
    cut = times.iloc[order[n - held]]
    return frame[times < cut - purge], frame[times >= cut]


def walk_forward(
    frame: pd.DataFrame, folds: int, purge: timedelta, time_col: str = "event_timestamp"
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Expanding-window (train, validation) folds over time, each boundary purged like above.

    The rows, in time order, are cut into ``folds + 1`` chunks of equal count, not of equal time:
    recorded data has gaps, and a fold whose validation span fell in one had no rows at all.
    """
    times = frame[time_col]
    ordered = times.sort_values(ignore_index=True)
    n = len(ordered)
    for k in range(1, folds + 1):
        start = ordered.iloc[n * k // (folds + 1)]
        val = times >= start
        if k < folds:
            val &= times < ordered.iloc[n * (k + 1) // (folds + 1)]
        yield frame[times < start - purge], frame[val]
