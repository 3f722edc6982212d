"""Data tests for sql/labels_fwd_vol_60s.sql (hand-checked windows), and purged chronological splits."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tickstore.lake import TICKS_DDL
from training import labels, splits

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ticks_con(rows: list[tuple[str, float, float]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(TICKS_DDL)
    for i, (product, sec, mid) in enumerate(rows):
        con.execute(
            "INSERT INTO ticks (product_id, event_time, sequence, tick_id, best_bid, best_ask) VALUES (?, ?, ?, ?, ?, ?)",
            [product, T0 + timedelta(seconds=sec), i, i, mid - 0.5, mid + 0.5],
        )
    return con


def test_forward_vol_uses_only_ticks_strictly_after_t() -> None:
    mids = {0: 100.0, 10: 101.0, 20: 103.0, 30: 102.0, 70: 104.0, 200: 100.0}
    con = ticks_con([("A", s, m) for s, m in mids.items()])
    got = labels.forward_vol(
        con, T0, T0 + timedelta(seconds=11), timedelta(seconds=10), timedelta(seconds=60)
    )
    by_t = {int((r.event_timestamp - T0).total_seconds()): r for r in got.itertuples()}
    # t = 0: ticks in (0, 60] are 10, 20, 30; returns between them: 10->20, 20->30 (0->10 starts at t: excluded)
    r1, r2 = math.log(103 / 101), math.log(102 / 103)
    assert by_t[0].fwd_vol == pytest.approx(math.sqrt(r1 * r1 + r2 * r2)) and by_t[0].fwd_returns == 2
    # t = 10: (10, 70] holds 20, 30, 70: returns 20->30 and 30->70 (10->20 starts at t: excluded)
    r3 = math.log(104 / 102)
    assert by_t[10].fwd_vol == pytest.approx(math.sqrt(r2 * r2 + r3 * r3))


def test_incomplete_horizons_are_dropped() -> None:
    con = ticks_con([("A", s, 100.0 + s / 10) for s in range(0, 100, 5)])  # data ends at 95 s
    got = labels.forward_vol(con, T0, T0 + timedelta(seconds=60), timedelta(seconds=5), timedelta(seconds=60))
    last = (got["event_timestamp"].max() - T0).total_seconds()
    assert last == 35  # 35 + 60 = 95 is the last tick; 40 + 60 is past the data


def test_ties_at_t_and_at_the_horizon_edge() -> None:
    # two ticks at t = 10 (neither is after t), two at t + 60 = 70 (both inside the horizon)
    rows = [("A", 0, 100.0), ("A", 10, 101.0), ("A", 10, 102.0), ("A", 30, 103.0), ("A", 70, 104.0)]
    rows += [("A", 70, 105.0), ("A", 71, 106.0), ("A", 200, 100.0)]
    got = labels.forward_vol(
        ticks_con(rows),
        T0 + timedelta(seconds=10),
        T0 + timedelta(seconds=11),
        timedelta(seconds=10),
        timedelta(seconds=60),
    )
    # returns in (10, 70]: 30 -> 70, 70 -> 70 (the pair at 10 -> 30 starts at t: excluded); 71 is past t + 60
    r1, r2 = math.log(104 / 103), math.log(105 / 104)
    assert got["fwd_returns"].tolist() == [2]
    assert got["fwd_vol"][0] == pytest.approx(math.sqrt(r1 * r1 + r2 * r2), rel=1e-12)


def test_a_flat_stretch_after_a_busy_one_has_exactly_zero_volatility() -> None:
    # Running sums of DOUBLE squares from DuckDB's window were not monotone (a prefix is added from
    # segment-tree nodes): after a busy stretch, 60 s of unchanged mids gave -8e-22 (sqrt raised) or
    # 3e-11. Several random walks, since which ones showed it depends on where the nodes fall.
    for seed in range(8):
        rng = random.Random(seed)
        mids, mid = [], 90_000.0
        for _ in range(rng.randint(500, 3000)):
            mid = round(mid + rng.gauss(0, 5), 2)
            mids.append(mid)
        flat_from = len(mids) / 2  # seconds: ticks every 0.5 s
        mids += [mid] * 300 + [mid + 1]
        frame = pd.DataFrame({"i": range(len(mids)), "sec": [i / 2 for i in range(len(mids))], "mid": mids})
        frame.loc[frame.index[-1], "sec"] = flat_from + 400  # the last move is past every horizon below
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(TICKS_DDL)
        con.execute(
            """INSERT INTO ticks (product_id, event_time, sequence, tick_id, best_bid, best_ask)
               SELECT 'A', ?::TIMESTAMPTZ + to_microseconds((sec * 1e6)::BIGINT), i, i,
                      mid - 0.005, mid + 0.005
               FROM frame""",
            [T0],
        )
        got = labels.forward_vol(
            con, T0, T0 + timedelta(seconds=flat_from + 80), timedelta(seconds=5), timedelta(seconds=60)
        )
        flat = got[got["event_timestamp"] >= T0 + timedelta(seconds=flat_from)]
        assert len(flat) >= 16 and (flat["fwd_returns"] >= 2).all()
        assert flat["fwd_vol"].tolist() == [0.0] * len(flat), seed


@st.composite
def label_streams(draw: st.DrawFn) -> list[tuple[str, float, float]]:
    """Ticks of two products on a half-second clock: ties, bursts, gaps longer than the horizon."""
    n = draw(st.integers(2, 80))
    return [
        (draw(st.sampled_from("AB")), draw(st.integers(0, 500)) / 2, 100.0 + draw(st.integers(-50, 50)) / 10)
        for _ in range(n)
    ]


def reference_labels(
    rows: list[tuple[str, float, float]], start: float, end: float, every: float, horizon: float
) -> dict[tuple[str, float], tuple[int, float]]:
    """The labels by their definition: every return whose two ticks both lie in (t, t + horizon]."""
    out = {}
    for product in sorted({p for p, _, _ in rows}):
        # the ticks the SQL reads, in its order (time, then insertion: sequence = tick_id = index)
        ticks = sorted((sec, i, mid) for i, (p, sec, mid) in enumerate(rows) if p == product)
        ticks = [(sec, mid) for sec, _, mid in ticks if start <= sec < end + 2 * horizon]
        if not ticks:
            continue
        pairs = [(a[0], b[0], math.log(b[1] / a[1])) for a, b in itertools.pairwise(ticks)]
        t = start
        while t < end:
            if t + horizon <= ticks[-1][0]:
                inside = [r for prev, at, r in pairs if prev > t and at <= t + horizon]
                if len(inside) >= 2:
                    out[(product, t)] = (len(inside), math.sqrt(sum(r * r for r in inside)))
            t += every
    return out


@hsettings(max_examples=40, deadline=None)
@given(rows=label_streams(), start=st.integers(0, 100), horizon=st.sampled_from([5.0, 20.0, 60.0]))
def test_labels_equal_their_definition_on_random_streams(
    rows: list[tuple[str, float, float]], start: int, horizon: float
) -> None:
    end, every = start + 150.0, 2.5
    got = labels.forward_vol(
        ticks_con(rows),
        T0 + timedelta(seconds=start),
        T0 + timedelta(seconds=end),
        timedelta(seconds=every),
        timedelta(seconds=horizon),
    )
    have = {
        (r.product_id, (r.event_timestamp - T0).total_seconds()): (r.fwd_returns, r.fwd_vol)
        for r in got.itertuples()
    }
    want = reference_labels(rows, float(start), end, every, horizon)
    assert have.keys() == want.keys()
    for key, (count, vol) in want.items():
        assert have[key][0] == count, key
        assert have[key][1] == pytest.approx(vol, rel=1e-9, abs=1e-15), key


def test_spike_threshold_is_a_training_percentile() -> None:
    assert labels.spike_threshold(pd.Series(range(101)), 95) == pytest.approx(95.0)


def test_chronological_split_purges_every_boundary() -> None:
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in range(1000)]})
    train, val, test = splits.chronological(frame, purge=timedelta(seconds=60))
    assert train["event_timestamp"].max() + timedelta(seconds=60) < val["event_timestamp"].min()
    assert val["event_timestamp"].max() + timedelta(seconds=60) < test["event_timestamp"].min()
    assert len(test) == pytest.approx(150, abs=2) and len(train) == pytest.approx(700 - 60, abs=2)


def test_chronological_split_takes_its_fractions_of_the_rows_across_a_gap() -> None:
    # rows for 0..1999 s and 2900..3099 s: cut by time (70% and 85% of the span: 2170 and 2635 s)
    # the validation split fell in the gap and had no rows, and training refused 2,200 rows as too few
    seconds = [*range(2000), *range(2900, 3100)]
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in seconds]})
    train, val, test = splits.chronological(frame, purge=timedelta(seconds=60))
    assert (len(train), len(val), len(test)) == (1540 - 60, 330 - 60, 330)
    assert train["event_timestamp"].max() + timedelta(seconds=60) < val["event_timestamp"].min()
    assert val["event_timestamp"].max() + timedelta(seconds=60) < test["event_timestamp"].min()


def test_walk_forward_folds_are_purged_and_expanding() -> None:
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in range(1000)]})
    folds = list(splits.walk_forward(frame, 3, timedelta(seconds=30)))
    assert len(folds) == 3
    sizes = [len(tr) for tr, _ in folds]
    assert sizes == sorted(sizes)
    for tr, va in folds:
        assert tr["event_timestamp"].max() + timedelta(seconds=30) < va["event_timestamp"].min()


def test_walk_forward_folds_have_rows_across_a_gap_in_the_data() -> None:
    # rows for 0..999 s and 2000..2999 s: folds cut by time (every 600 s) had one validating on
    # 1200..1799 s, nothing, and `tickstore train --folds 4` failed on a numpy error after training
    seconds = [*range(1000), *range(2000, 3000)]
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in seconds]})
    folds = list(splits.walk_forward(frame, 4, timedelta(seconds=30)))
    assert [len(va) for _, va in folds] == [400, 400, 400, 400]
    validated = pd.concat([va for _, va in folds])
    assert validated.index.is_unique and len(validated) == 1600  # every row after the first chunk, once
    for tr, va in folds:
        assert tr["event_timestamp"].max() + timedelta(seconds=30) < va["event_timestamp"].min()


def feature_table(n: int, seed: int) -> pd.DataFrame:
    """A training table of ``n`` rows a second apart: an informative feature, a noise one, labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    vol = np.abs(rng.normal(0, 1, n)).cumsum() % 3 + rng.normal(0, 0.1, n)
    return pd.DataFrame(
        {
            "product_id": "A",
            "event_timestamp": [T0 + timedelta(seconds=i) for i in range(n)],
            "ret_std_60s": vol + rng.normal(0, 0.3, n),  # informative feature
            "noise": rng.normal(0, 1, n),
            "fwd_vol": vol,
            "fwd_returns": 10,
        }
    )


def test_walk_forward_cross_validation_scores_every_model_on_every_fold() -> None:
    import numpy as np

    from training.train import TrainConfig, spikes_of, walk_forward

    n = 3000
    table = feature_table(n, seed=0)
    cfg = TrainConfig(T0, T0 + timedelta(seconds=n), folds=3, horizon=timedelta(seconds=60))
    folds = walk_forward(table, cfg)
    assert len(folds) == 3 and all(set(f.pr_auc) == {"zscore", "logreg", "xgboost"} for f in folds)
    assert (
        np.nanmean([f.pr_auc["zscore"] for f in folds]) > 0.3
    )  # the informative feature is found fold after fold
    # what each fold's validation rows hold, counted from the rows themselves: 750 a fold, in time order,
    # spikes above the fold's own training rows' 95th percentile
    assert [(f.start, f.end, f.rows) for f in folds] == [
        (T0 + timedelta(seconds=s), T0 + timedelta(seconds=s + 749), 750) for s in (750, 1500, 2250)
    ]
    for k, fold in enumerate(folds, 1):
        train = table[table["event_timestamp"] < fold.start - cfg.horizon]
        assert fold.train_rows == len(train) and not fold.skipped
        val = table[table["event_timestamp"] >= fold.start][: fold.rows]
        threshold = np.percentile(train["fwd_vol"], 95)
        assert fold.spikes == int(spikes_of(val, threshold).sum()) > 0, k
        assert fold.base_rate == fold.spikes / fold.rows and 1 <= fold.episodes <= fold.spikes


def test_walk_forward_folds_too_small_to_score_give_nan() -> None:
    from training.train import TrainConfig, walk_forward

    table = pd.DataFrame(
        {
            "product_id": "A",
            "event_timestamp": [T0 + timedelta(seconds=i) for i in range(200)],
            "ret_std_60s": [float(i % 7) for i in range(200)],
            "fwd_vol": [float(i % 5) for i in range(200)],
            "fwd_returns": 10,
        }
    )
    cfg = TrainConfig(T0, T0 + timedelta(seconds=200), folds=9, horizon=timedelta(seconds=60))
    folds = walk_forward(table, cfg)  # 20 rows a chunk: under the 50 a split needs
    assert len(folds) == 9 and all(f.skipped == "under 50 rows" for f in folds)
    assert all(set(f.pr_auc) == {"zscore", "logreg", "xgboost"} for f in folds)
    assert all(v != v for f in folds for v in f.pr_auc.values())


def test_early_stopping_rows_are_the_last_training_rows_purged() -> None:
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in range(1000)]})
    fitted, stop = splits.early_stopping(frame, purge=timedelta(seconds=60))
    assert len(stop) == 150 and stop["event_timestamp"].min() == T0 + timedelta(seconds=850)
    assert fitted["event_timestamp"].max() + timedelta(seconds=60) < stop["event_timestamp"].min()
    assert len(fitted) == 850 - 60


def test_early_stopping_rows_grow_back_until_they_hold_enough_spikes() -> None:
    """The last 15% of the rows can hold no spike (spikes come in bursts): then as many of the last
    rows as hold `STOP_SPIKES` are held out, up to half of them."""
    import numpy as np

    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in range(1000)]})
    spikes = np.zeros(1000, dtype=int)
    spikes[600:640] = 1  # 40 spikes, all before the last 15%
    _, stop = splits.early_stopping(frame, purge=timedelta(seconds=60), spikes=spikes)
    # the fewest last rows holding 30 of them: from row 610 on
    assert stop["event_timestamp"].min() == T0 + timedelta(seconds=610) and len(stop) == 390
    assert spikes[stop.index].sum() == splits.STOP_SPIKES
    # enough spikes in the last 15% already: those rows, as without spikes given
    spikes[900:] = 1
    assert len(splits.early_stopping(frame, purge=timedelta(0), spikes=spikes)[1]) == 150
    # too few anywhere near the end: half of the rows at most, the fit keeps the other half less the purge
    spikes[:] = 0
    spikes[:100] = 1
    fitted, stop = splits.early_stopping(frame, purge=timedelta(seconds=60), spikes=spikes)
    assert len(stop) == 500 and len(fitted) == 500 - 60
    # rows out of time order are held out by their times, the spikes read in the frame's order
    shuffled = frame.sample(frac=1, random_state=3)
    order = shuffled.index.to_numpy()
    spikes[:] = 0
    spikes[600:640] = 1
    _, stop = splits.early_stopping(shuffled, purge=timedelta(0), spikes=spikes[order])
    assert stop["event_timestamp"].min() == T0 + timedelta(seconds=610) and len(stop) == 390


def split_probabilities(frame: pd.DataFrame, horizon: timedelta) -> dict[str, Any]:
    """Each model's test probabilities, as `tickstore train` fits and scores them on ``frame``."""
    from training.train import TrainConfig, fit_and_score

    cfg = TrainConfig(T0, T0 + timedelta(seconds=len(frame)), horizon=horizon)
    seen: dict[str, Any] = {}

    def keep(model, x, y, p, cut):  # type: ignore[no-untyped-def]
        seen[model.name] = p
        return "", ""

    fit_and_score(frame, cfg, keep)
    return seen


def test_the_validation_split_tunes_no_model() -> None:
    """Validation picks the threshold and the champion, so no model may have been fitted or stopped
    on it: its rows changed, every model's test probabilities stay the same."""
    import numpy as np

    n = 4000
    table = feature_table(n, seed=1)
    rng = np.random.default_rng(1)
    horizon = timedelta(seconds=60)
    before = split_probabilities(table, horizon)
    _, val, _ = splits.chronological(table, purge=horizon)
    scrambled = table.copy()
    # the validation rows' features and labels replaced by noise: what early stopping there would follow
    scrambled.loc[val.index, ["ret_std_60s", "noise", "fwd_vol"]] = rng.normal(0, 3, (len(val), 3))
    after = split_probabilities(scrambled, horizon)
    assert set(before) == {"zscore", "logreg", "xgboost"}
    for name in before:
        assert np.array_equal(before[name], after[name]), name


def test_only_the_model_that_stops_early_sees_where_the_hold_out_falls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rule and the logistic regression fit on every training row: when XGBoost's hold-out
    grows (to half the rows, asked for more spikes than there are), only XGBoost's scores move (the
    others had lost the purge gap before it, so they moved with it)."""
    import numpy as np

    table = feature_table(4000, seed=1)
    before = split_probabilities(table, timedelta(seconds=60))
    monkeypatch.setattr(splits, "STOP_SPIKES", 10**6)
    after = split_probabilities(table, timedelta(seconds=60))
    assert np.array_equal(before["zscore"], after["zscore"])
    assert np.array_equal(before["logreg"], after["logreg"])
    assert not np.array_equal(before["xgboost"], after["xgboost"])


def test_xgboost_without_spikes_held_out_fits_every_training_row_the_purge_gap_too() -> None:
    """With nothing to stop on XGBoost grows every tree on the training rows, as the other models fit:
    all of them, not the fit and hold-out rows alone (the purge gap between them was left out)."""
    import numpy as np

    from training.models import XGBoost
    from training.train import fit_model, spikes_of

    table = feature_table(3000, seed=2)
    threshold = float(np.percentile(table["fwd_vol"], 95))
    fitted, stop = splits.early_stopping(table, purge=timedelta(seconds=300))
    calm_stop = stop[spikes_of(stop, threshold) == 0]  # held-out rows of one class
    columns = ["ret_std_60s", "noise"]
    none = table.iloc[:0]

    def probabilities(train: pd.DataFrame) -> np.ndarray:
        model = XGBoost()
        model.fit(train[columns], spikes_of(train, threshold), none[columns], spikes_of(none, threshold))
        return model.predict_proba(table[columns])

    model = XGBoost()
    fit_model(model, table, fitted, calm_stop, threshold, columns)
    assert model.trees == model.params["n_estimators"]
    every_row = probabilities(table)
    assert np.array_equal(model.predict_proba(table[columns]), every_row)
    # the purge gap's 300 rows make a difference, so the comparison above can tell
    assert not np.array_equal(every_row, probabilities(pd.concat([fitted, calm_stop])))
