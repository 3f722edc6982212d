"""Benchmark: build the training set and train all three models over one day of simulated ticks for
three products, one label per second per product.

    make bench            # or: .venv/bin/python bench/train.py [--hours 24]
"""

from __future__ import annotations

import argparse
import atexit
import logging
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest import simulate  # noqa: E402
from tickstore import lake  # noqa: E402
from tickstore.settings import Settings  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--hours",
        type=float,
        default=24.0,
        help="simulated hours of ticks, 3 products (default: %(default)s)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    s = Settings(home=Path(tempfile.mkdtemp(prefix="tickstore-bench-train-")))
    atexit.register(shutil.rmtree, s.home, ignore_errors=True)  # a run leaves no lake behind
    # ~4.2 ticks/s per product over the span; at the fitted rates BTC-USD's ticks reach 23:35,
    # ETH-USD's 21:29 and SOL-USD's 21:52 (the last hours are labeled for fewer products)
    n = int(args.hours * 3600 * 3 * 4.2)
    con = lake.connect(s)
    con.register("sim", simulate.tick_table(simulate.SimConfig(n_ticks=n, start=START.timestamp())))
    con.execute("INSERT INTO ticks BY NAME SELECT * FROM sim")
    con.close()
    print(f"simulated {n:,} ticks, 3 products, {args.hours:g} h")
    started = time.perf_counter()
    marks: list[tuple[str, float]] = []

    def log(message: str) -> None:
        marks.append((message, time.perf_counter() - started))

    report = train(s, TrainConfig(START, START + timedelta(hours=args.hours)), log=log)
    total = time.perf_counter() - started
    built = marks[0][1] if marks else float("nan")
    rows = sum(report.rows[k] for k in ("train", "validation", "test"))
    print(f"training set (labels + point-in-time features): {built:.1f} s ({marks[0][0] if marks else ''})")
    print(f"models (3) + metrics + MLflow + Evidently: {total - built:.1f} s")
    print(f"total: {total:.1f} s for {rows:,} labeled rows after purging")
    for r in report.results:
        print(
            f"  {r.name:8s} val PR-AUC {r.validation_pr_auc:.3f}"
            + (f" (beats the rule in {r.beats_rule:.0%})" if r.beats_rule == r.beats_rule else "")
            + f"  test PR-AUC {r.test.pr_auc:.3f} "
            f"[{r.test.pr_auc_low:.3f}, {r.test.pr_auc_high:.3f}] (blocks of {r.test.block:,} rows)  "
            f"ROC-AUC {r.test.roc_auc:.3f}  Brier {r.test.brier:.4f}  base rate {r.test.base_rate:.3f}  "
            f"test rows called a spike {r.test.flagged:.1%}" + (f"  trees {r.trees}" if r.trees else "")
        )
    stopping = report.spikes["early_stopping"], report.rows["early_stopping"]
    print(f"early stopping on the last training rows: {stopping[0]:,} spikes in {stopping[1]:,} rows")
    spikes = report.spikes
    print(
        f"validation: {spikes['validation']:,} spikes in {report.rows['validation']:,} rows, "
        f"{spikes['validation_episodes']} separate episodes"
    )
    print(f"champion: {report.champion or 'none'}")


if __name__ == "__main__":
    main()
