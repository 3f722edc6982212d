"""A gradient-boosted tree model flattened into NumPy arrays, to score a few rows in microseconds.

XGBoost's own predict costs ~200 us for one row whatever the model's size (ctypes, config JSON,
adapters), a quarter of a scoring request's CPU. The same trees walked level by level in NumPy, every
tree at once, cost a fraction of that (see docs/decisions.md). Only what tickstore trains is compiled:
a binary:logistic gbtree with numeric splits. Anything else returns None and is scored by XGBoost.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

OBJECTIVES = {"binary:logistic", "reg:logistic"}


@dataclass(frozen=True)
class CompiledTrees:
    """Every tree's nodes in flat arrays; a leaf points to itself, so extra steps leave it in place."""

    roots: np.ndarray  # int64 (trees,): first node of each tree
    feature: np.ndarray  # int64 (nodes,): split feature (0 at leaves: read, then ignored)
    threshold: np.ndarray  # float32 (nodes,): go left when value < threshold (XGBoost compares float32)
    left: np.ndarray  # int64 (nodes,)
    right: np.ndarray  # int64 (nodes,)
    missing: np.ndarray  # int64 (nodes,): where a NaN goes (XGBoost's default direction)
    leaf: np.ndarray  # float32 (nodes,): leaf value, 0 elsewhere
    depth: int  # steps from a root to its deepest leaf
    base_margin: np.float32

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of the positive class for rows ``x`` (n, features), NaN for missing: the very
        float32 values XGBoost's predict_proba gives (as float64).

        Bit for bit, not close: the decision threshold is one of XGBoost's probabilities on the
        validation rows, and a tree model gives many rows that same value. 1e-7 off put 311 of 4,323
        rows of a real training set on the other side of it (served "no spike" where training decided
        "spike").
        """
        x32 = np.asarray(x, dtype=np.float32)
        rows = np.arange(len(x32))[:, None]
        node = np.broadcast_to(self.roots, (len(x32), len(self.roots)))
        for _ in range(self.depth):
            value = x32[rows, self.feature[node]]
            step = np.where(value < self.threshold[node], self.left[node], self.right[node])
            node = np.where(np.isnan(value), self.missing[node], step)
        # XGBoost starts each row at the base margin and adds the trees one by one in float32;
        # cumsum adds in that order (sum() adds pairwise: other roundings)
        terms = np.concatenate([np.full((len(x32), 1), self.base_margin), self.leaf[node]], axis=1)
        margin = np.cumsum(terms, axis=1, dtype=np.float32)[:, -1]
        # XGBoost's float32 sigmoid, 1 / (1 + expf(min(-m, 88.7))), with the C library's expf: float64
        # exp rounded to float32 differs from glibc's in the last bit for 191 of 300,000 margins (NumPy's
        # float32 exp for 117,366), and a probability a bit off sits on the other side of a threshold
        # it equals
        functions = _libm()
        assert functions is not None  # compile_xgboost made sure
        exps = [functions[1](float(v)) for v in np.minimum(-margin, np.float32(88.7))]
        e = np.array(exps, dtype=np.float32)
        return (np.float32(1.0) / (e + np.float32(1.0))).astype(np.float64)


def compile_xgboost(estimator: Any) -> CompiledTrees | None:
    """Flatten a fitted ``XGBClassifier``'s trees (up to its best iteration, as its predict does)."""
    try:
        model = json.loads(estimator.get_booster().save_raw("json"))["learner"]
    except Exception:  # not an XGBoost model, or one too old to save JSON
        return None
    booster = model["gradient_booster"]
    params = model["learner_model_param"]
    if (
        model["objective"]["name"] not in OBJECTIVES
        or booster["name"] != "gbtree"
        or int(params.get("num_target", "1")) != 1
        or int(params.get("num_class", "0")) > 1
    ):
        return None
    trees = booster["model"]["trees"]
    indptr = booster["model"].get("iteration_indptr")
    best = _best_iteration(estimator)
    if best is not None and indptr:
        trees = trees[: indptr[best + 1]]
    if any(any(t["split_type"]) for t in trees):  # categorical splits: leave them to XGBoost
        return None
    stands_for_missing = getattr(estimator, "missing", np.nan)
    if stands_for_missing is not None and not np.isnan(stands_for_missing):  # e.g. 0: XGBoost's job
        return None

    roots: list[int] = []
    feature: list[int] = []
    left: list[int] = []
    right: list[int] = []
    missing: list[int] = []
    threshold: list[float] = []
    leaf: list[float] = []
    depth = 0
    for tree in trees:
        base = len(feature)
        roots.append(base)
        lc, rc = tree["left_children"], tree["right_children"]
        for i, (lo, hi) in enumerate(zip(lc, rc, strict=True)):
            is_leaf = lo == -1
            feature.append(0 if is_leaf else tree["split_indices"][i])
            threshold.append(0.0 if is_leaf else tree["split_conditions"][i])
            left.append(base + i if is_leaf else base + lo)
            right.append(base + i if is_leaf else base + hi)
            missing.append(left[-1] if tree["default_left"][i] else right[-1])
            leaf.append(tree["split_conditions"][i] if is_leaf else 0.0)
        depth = max(depth, _depth(lc, rc))

    base_margin = _base_margin(float(params["base_score"].strip("[]")))  # "[5E-1]" since XGBoost 2.1
    if base_margin is None:
        return None
    return CompiledTrees(
        roots=np.array(roots, dtype=np.int64),
        feature=np.array(feature, dtype=np.int64),
        threshold=np.array(threshold, dtype=np.float32),
        left=np.array(left, dtype=np.int64),
        right=np.array(right, dtype=np.int64),
        missing=np.array(missing, dtype=np.int64),
        leaf=np.array(leaf, dtype=np.float32),
        depth=depth,
        base_margin=base_margin,
    )


@functools.cache
def _libm() -> tuple[Callable[[float], float], Callable[[float], float]] | None:
    """The C library's float32 logf and expf, which XGBoost computes with; None where none loads."""
    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        logf, expf = libm.logf, libm.expf
    except (OSError, AttributeError):
        return None
    for f in (logf, expf):
        f.restype, f.argtypes = ctypes.c_float, [ctypes.c_float]
    return logf, expf


def _base_margin(base_score: float) -> np.float32 | None:
    """The log-odds XGBoost starts each row from, as it computes them from binary:logistic's base_score
    (a probability): -logf(1 / b - 1) in float32, logf the C library's. NumPy's float32 log gave
    another last bit for 543 of 3,000 random b and log(b / (1 - b)) for 1,832 of them, float64 log
    rounded to float32 for 60 of another 20,000; the C library's for none of either. None (leave the
    model to XGBoost) where no C library answers, or b is within 1e-5 of 0 or 1 (XGBoost clamps it
    somewhere there: a 1e-6 gave another margin)."""
    functions = _libm()
    if functions is None or not 1e-5 <= base_score <= 1 - 1e-5:
        return None
    odds_against = np.float32(1.0) / np.float32(base_score) - np.float32(1.0)
    return np.float32(-functions[0](float(odds_against)))


def _best_iteration(estimator: Any) -> int | None:
    try:  # XGBClassifier.best_iteration raises when the model was fitted without early stopping
        return estimator.best_iteration  # type: ignore[no-any-return]
    except AttributeError:
        return None


def _depth(left: list[int], right: list[int]) -> int:
    deepest, stack = 0, [(0, 0)]
    while stack:
        node, d = stack.pop()
        if left[node] == -1:
            deepest = max(deepest, d)
        else:
            stack += [(left[node], d + 1), (right[node], d + 1)]
    return deepest
