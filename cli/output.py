"""Print query results as a table, CSV or JSON."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def print_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str = "table",
    limit: int = 1000,
    title: str | None = None,
) -> None:
    """Write ``rows`` to stdout in ``fmt`` (table | csv | json); tables stop after ``limit`` rows."""
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([[_plain(v) for v in row] for row in rows])
    elif fmt == "json":
        for row in rows:
            sys.stdout.write(json.dumps({c: _plain(v) for c, v in zip(columns, row, strict=True)}) + "\n")
    else:
        table = Table(*columns, title=title, title_justify="left")
        for row in rows[:limit]:
            table.add_row(*("NULL" if v is None else str(_plain(v)) for v in row))
        # a pipe or CI log gets a wide table rather than one wrapped into unreadable slivers
        console = Console(width=None if sys.stdout.isatty() else 200)
        console.print(table)
        if len(rows) > limit:
            console.print(f"({len(rows) - limit:,} more rows; use --limit or --format csv)")


def print_train_report(report: Any, console: Console) -> None:
    """The model comparison table of a training run (honest labels, and leaky ones when trained)."""
    rows = []
    for kind, results in (("honest", report.results), ("leaky shift(-1)", report.leaky)):
        for r in results:
            t = r.test
            rows.append(
                (
                    kind,
                    r.name,
                    f"{r.validation_pr_auc:.3f}",
                    f"{t.pr_auc:.3f} [{t.pr_auc_low:.3f}, {t.pr_auc_high:.3f}]",
                    f"{t.roc_auc:.3f}",
                    f"{t.f1:.3f}",
                    f"{t.precision:.3f}",
                    f"{t.recall:.3f}",
                    f"{t.brier:.4f}",
                    f"{t.base_rate:.3f}",
                )
            )
    print_rows(
        [
            "labels",
            "model",
            "val PR-AUC",
            "test PR-AUC [95% CI]",
            "ROC-AUC",
            "F1",
            "precision",
            "recall",
            "Brier",
            "base rate",
        ],
        rows,
        title=f"test split ({report.rows['test']:,} rows), lake snapshot {report.snapshot}",
    )
    if report.champion:
        console.print(f"champion: {report.champion} (registered version {report.champion_version})")
    else:
        console.print("no champion: no model beat the z-score rule on validation PR-AUC")
