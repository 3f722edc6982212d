"""The point-in-time join, written once: entity rows ASOF-joined to each feature view's rows.

For an entity row (key, t) a feature view contributes the row with the same key and the latest
timestamp <= t (ties broken by the created timestamp, newest first), and NULLs when that row is older
than the view's TTL or there is none. Identifiers are quoted; every value is a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from tickstore_feast.source import DuckDBSource


@dataclass
class Query:
    """SQL text plus its bound parameters."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ViewJoin:
    """One feature view's part of a historical retrieval."""

    name: str
    source: DuckDBSource
    entity_keys: list[str]  # columns of the entity rows
    source_keys: list[str]  # the same keys as the source names them
    features: list[str]
    output_names: list[str]
    timestamp_field: str
    created_timestamp_column: str | None
    ttl: timedelta | None


def quote(identifier: str) -> str:
    """A DuckDB quoted identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def _source_rows(src: DuckDBSource, lo: str | None, hi: str | None) -> str:
    """FROM-clause text for ``src``, reading only what [$lo, $hi] needs when those are given.

    A table is filtered on its timestamp. Feature SQL selects FROM ticks: a CTE of that name in front
    of it shadows the table, so its windows are computed over just the ticks in range (``lo`` already
    reaches back by the source's lookback, so windows and returns near the start are complete).
    """
    if lo is None:
        return src.from_clause()
    upper = f" AND {{ts}} <= ${hi}" if hi else ""
    if src.table is not None:
        ts = quote(src.timestamp_field)
        return f"(SELECT * FROM {src.from_clause()} WHERE {ts} >= ${lo}{upper.format(ts=ts)})"  # noqa: S608
    return (
        f"(WITH ticks AS (SELECT * FROM lake.main.ticks WHERE event_time >= ${lo}{upper.format(ts='event_time')}) "  # noqa: S608
        f"SELECT * FROM {src.from_clause()})"
    )


def pull(
    src: DuckDBSource,
    keys: list[str],
    features: list[str],
    timestamp_field: str,
    created: str | None,
    start: datetime | None,
    end: datetime | None,
    *,
    latest: bool,
) -> Query:
    """Rows of ``src`` in [start, end]; with ``latest`` only the newest per key (for materialization)."""
    params: dict[str, Any] = {}
    lo = hi = None
    if start is not None:
        params["read_from"] = start - 2 * src.lookback  # returns need the tick before the window too
        lo = "read_from"
    if end is not None:
        params["read_to"] = end
        hi = "read_to"
    ts = quote(timestamp_field)
    cols = [*keys, *features, timestamp_field] + ([created] if created else [])
    where = []
    if start is not None:
        params["start"] = start
        where.append(f"{ts} >= $start")
    if end is not None:
        params["end"] = end
        where.append(f"{ts} <= $end")
    sql = f"SELECT {', '.join(quote(c) for c in cols)} FROM {_source_rows(src, lo, hi)} AS src"  # noqa: S608
    if where:
        sql += " WHERE " + " AND ".join(where)
    if latest:
        order = f"{ts} DESC" + (f", {quote(created)} DESC" if created else "")
        partition = ", ".join(quote(k) for k in keys) or "1"
        sql += f" QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {order}) = 1"
    return Query(sql, params)


def historical(
    con: duckdb.DuckDBPyConnection, entities: pd.DataFrame, ts_col: str, joins: list[ViewJoin]
) -> Query:
    """The point-in-time join of ``entities`` with every view in ``joins``, in entity-row order."""
    # Read in place by the query, not copied into a table first (that copy was ~10% of a 100k-row
    # request); the registration ends with the connection.
    con.register("entity_rows", entities.assign(__row=np.arange(len(entities))))
    ts_sql = f"{quote(ts_col)}::TIMESTAMPTZ"
    first, last = _bounds(con, entities[ts_col], ts_sql)

    params: dict[str, Any] = {}
    selects = [f"e.{quote(c)}" for c in entities.columns]
    joined = f"(SELECT *, {ts_sql} AS __ts FROM entity_rows) AS e"  # noqa: S608
    for i, view in enumerate(joins):
        alias = f"v{i}"
        lo = hi = None
        if view.ttl is not None and first is not None:
            params[f"lo{i}"] = first - view.ttl - 2 * view.source.lookback
            params[f"hi{i}"] = last
            lo, hi = f"lo{i}", f"hi{i}"
        ts = quote(view.timestamp_field)
        keys = ", ".join(quote(k) for k in view.source_keys)
        # One row per (key, timestamp): the newest created, else a deterministic pick among equals.
        tie = (
            f"{quote(view.created_timestamp_column)} DESC"
            if view.created_timestamp_column
            else ", ".join(quote(f) for f in view.features)
        )
        rows = (
            f"(SELECT {keys}, {ts} AS __fv_ts, {', '.join(quote(f) for f in view.features)} "  # noqa: S608
            f"FROM {_source_rows(view.source, lo, hi)} AS src "
            f"QUALIFY row_number() OVER (PARTITION BY {keys}, {ts} ORDER BY {tie}) = 1)"
        )
        on = " AND ".join(
            f"{alias}.{quote(s)} = e.{quote(k)}"
            for s, k in zip(view.source_keys, view.entity_keys, strict=True)
        )
        joined += f" ASOF LEFT JOIN {rows} AS {alias} ON {on} AND e.__ts >= {alias}.__fv_ts"
        fresh = "TRUE"
        if view.ttl is not None:
            params[f"ttl{i}"] = int(view.ttl / timedelta(microseconds=1))
            fresh = f"{alias}.__fv_ts >= e.__ts - to_microseconds(${f'ttl{i}'})"
        for feature, out in zip(view.features, view.output_names, strict=True):
            selects.append(f"CASE WHEN {fresh} THEN {alias}.{quote(feature)} END AS {quote(out)}")
    sql = (
        f"SELECT {', '.join(s for s in selects if s != 'e.' + quote('__row'))} FROM {joined} ORDER BY e.__row"  # noqa: S608
    )
    return Query(sql, params)


def _bounds(con: duckdb.DuckDBPyConnection, times: pd.Series, ts_sql: str) -> tuple[Any, Any]:
    """The first and last entity timestamp (None, None without any), as the join reads them."""
    if isinstance(times.dtype, pd.DatetimeTZDtype) or times.dtype.kind == "M":
        # datetimes: numpy's min and max, without a query; naive ones are UTC, as the cast reads them
        first, last = times.min(), times.max()
        if pd.isna(first):
            return None, None
        if first.tzinfo is None:
            first, last = first.tz_localize("UTC"), last.tz_localize("UTC")
        # floored to microseconds, as DuckDB's TIMESTAMPTZ holds them
        return first.floor("us").to_pydatetime(), last.floor("us").to_pydatetime()
    bounds = con.execute(f"SELECT min({ts_sql}), max({ts_sql}) FROM entity_rows").fetchone()  # noqa: S608
    return bounds if bounds else (None, None)
