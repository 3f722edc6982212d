"""`tickstore sql --plot FILE`: a query's rows as a chart, each number column against the first column.

A feature is easier to look at than to read: `SELECT event_time, ret_std_60s, spread_bps_mean_60s FROM
ticks_60s(...)` becomes one panel a feature over a shared time axis, a line a product (or a value of
whatever text columns the query gives).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

SUFFIXES = (".png", ".svg", ".pdf")
MAX_PANELS = 8  # number columns, a panel each: more are unreadable stacked
GAP_STEPS = 50  # a step this many times the median one breaks the line
MAX_LINES = 12  # lines a panel: past that the colours repeat and the legend covers the chart


def check_path(path: Path) -> Path:
    """``path`` if matplotlib writes its kind (by suffix); ValueError saying which it writes."""
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"a plot is written as {', '.join(SUFFIXES)} (by its suffix): not {path.name}")
    return path


def heading(query: str, width: int = 120) -> str:
    """The query as the picture's one-line title: its whitespace runs as single spaces, and cut to
    ``width`` with an ellipsis (cut bare, a long query read as if it were whole)."""
    shown = " ".join(query.split())
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def plot(rel: duckdb.DuckDBPyRelation, path: Path, title: str) -> str:
    """Draw ``rel``'s rows to ``path``: the first column across, a panel each other number column, a line
    each distinct value of its text columns. Returns what was drawn, in a line; ValueError when the
    rows can't be drawn so, saying what would."""
    frame = rel.df()
    if frame.empty:
        raise ValueError("the query gave no rows: nothing to plot")
    x, *rest = frame.columns
    if not (pd.api.types.is_datetime64_any_dtype(frame[x]) or _is_number(frame[x])):
        raise ValueError(
            f"the first column is the plot's x axis, a time or a number: {x} is neither (put event_time "
            "first: SELECT event_time, ret_std_60s, ... )"
        )
    numbers = [c for c in rest if _is_number(frame[c])]
    types = dict(zip(rel.columns, map(str, rel.types), strict=True))
    # a line a value of a text column (a product); a time of day, a list or a second time is no line's name
    groups = [c for c in rest if c not in numbers and _names_lines(types[c])]
    left_out = [c for c in rest if c not in numbers and c not in groups]
    if not numbers:
        raise ValueError(f"no number column to plot against {x}: select a feature or a price after it")
    if len(numbers) > MAX_PANELS:
        raise ValueError(
            f"{len(numbers)} number columns ({', '.join(numbers)}): a plot stacks at most {MAX_PANELS}; "
            "select fewer"
        )
    parts = list(frame.groupby(groups, sort=True, dropna=False)) if groups else [((), frame)]
    if len(parts) > MAX_LINES:
        raise ValueError(
            f"{len(parts)} distinct values of {', '.join(groups)}: a panel draws at most {MAX_LINES} lines; "
            "narrow it with WHERE"
        )
    _draw(frame, parts, numbers, path, title)
    drawn = f"{len(frame):,} row{'s' * (len(frame) != 1)}"
    if groups:
        drawn += f" ({len(parts)} line{'s' * (len(parts) != 1)} by {', '.join(groups)})"
    if left_out:
        drawn += f" (left out, neither a number nor text: {', '.join(f'{c} {types[c]}' for c in left_out)})"
    return f"plotted {drawn} of {', '.join(numbers)} against {x}: {path}"


def _names_lines(duckdb_type: str) -> bool:
    """Whether a column of ``duckdb_type`` splits the rows into lines: text, an enum, a boolean."""
    return duckdb_type in ("VARCHAR", "BOOLEAN") or duckdb_type.startswith("ENUM")


def _broken_at_gaps(part: pd.DataFrame, x: str, numbers: list[str]) -> pd.DataFrame:
    """``part`` (in x order) with a blank point inside every gap over GAP_STEPS times its median step,
    so a line stops where the data does (a recording's missing hour was a straight line across)."""
    steps = part[x].diff()
    median = steps.median()
    if len(part) < 3 or not median > median * 0:  # no typical step to compare with (one time, or none)
        return part
    gaps = steps > median * GAP_STEPS
    if not gaps.any():
        return part
    blanks = pd.DataFrame({x: part[x][gaps] - steps[gaps] / 2}).reindex(columns=[x, *numbers])
    return pd.concat([part[[x, *numbers]], blanks]).sort_values(x, kind="stable")


def _literal(text: str) -> str:
    """``text`` as matplotlib prints it, not as math: a query's `$since ... $until` came out in italics."""
    return text.replace("$", r"\$")


def _is_number(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _draw(
    frame: pd.DataFrame, parts: list[tuple[Any, pd.DataFrame]], numbers: list[str], path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window: no display on servers
    import matplotlib.pyplot as plt

    x = frame.columns[0]
    fig, axes = plt.subplots(
        len(numbers), 1, sharex=True, figsize=(10, 1.2 + 1.9 * len(numbers)), squeeze=False
    )
    try:
        for key, part in parts:
            part = _broken_at_gaps(part.sort_values(x, kind="stable"), x, numbers)
            names = key if isinstance(key, tuple) else (key,)
            label = _literal(" ".join(map(str, names))) or None
            for ax, column in zip(axes[:, 0], numbers, strict=True):
                ax.plot(part[x], part[column], linewidth=0.8, label=label)
        for ax, column in zip(axes[:, 0], numbers, strict=True):
            ax.set_ylabel(_literal(column), fontsize=8)
            ax.grid(True, linewidth=0.3)
            ax.tick_params(labelsize=7)
        if len(parts) > 1 or parts[0][0] != ():
            axes[0, 0].legend(fontsize=7, loc="upper left")
        zone = getattr(frame[x].dt, "tz", None) if pd.api.types.is_datetime64_any_dtype(frame[x]) else None
        axes[-1, 0].set_xlabel(
            _literal(f"{x} ({zone})" if zone else x)
        )  # tickstore's connections read times in UTC
        fig.suptitle(_literal(heading(title)), fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
