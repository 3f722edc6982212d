"""The point-in-time join, written once: entity rows ASOF-joined to each feature view's rows.

For an entity row (key, t) a feature view contributes the row with the same key and the latest
timestamp <= t (ties broken by the created timestamp, newest first), and NULLs when that row is older
than the view's TTL or there is none. Identifiers are quoted; every value is a bound parameter.

Where the entity rows and a view's source type the keys alike, the ASOF join matches on a 64-bit
hash of them: DuckDB's ASOF join sorts on its equality keys, and a fixed-width key sorts faster than
text. The picked row's own keys are then compared with the entity row's, once a row: a hash
collision that picks another key's row raises `COLLISION`, and the caller runs ``Query.fallback``,
the same join on the keys themselves. A collision that leaves the pick alone does no harm: the
newest row at or before t among two keys' rows, when it is this key's, is this key's newest too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from tickstore import feature_sql
from tickstore_feast.source import DuckDBSource

COLLISION = "tickstore: entity key hash collision"


@dataclass
class Query:
    """SQL text plus its bound parameters; when ``fallback`` is set, run it should this query raise
    `COLLISION`, after registering its ``tables`` (Python data the query reads by name)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    fallback: Query | None = None
    tables: dict[str, Any] = field(default_factory=dict)


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


def column_name(view: str, feature: str, full_feature_names: bool) -> str:
    """The column a retrieval names ``view``'s ``feature``: ``view__feature`` with full feature names
    (Feast's spelling), else the feature's own name."""
    return f"{view}__{feature}" if full_feature_names else feature


def quote(identifier: str) -> str:
    """A DuckDB quoted identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def _source_rows(src: DuckDBSource, lo: str | None, hi: str | None) -> str:
    """FROM-clause text for ``src``, reading only what [$lo, $hi] needs when those are given.

    A table is filtered on its timestamp; feature SQL is computed over just the ticks in range
    (`feature_sql.over_ticks`; ``lo`` already reaches back by twice the source's lookback, so windows
    and returns near the start are complete).
    """
    if lo is None:
        return src.from_clause()
    if src.table is not None:
        ts = quote(src.timestamp_field)
        upper = f" AND {ts} <= ${hi}" if hi else ""
        return f"(SELECT * FROM {src.from_clause()} WHERE {ts} >= ${lo}{upper})"  # noqa: S608
    return f"({feature_sql.over_ticks(src.query or '', f'${lo}', f'${hi}' if hi else None)})"


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
        # returns need the tick before the window too; a start within the lookback of year 1 reads
        # from year 1 (`feast materialize 0001-01-01T00:00:00 ...` was an OverflowError)
        params["read_from"] = start - min(2 * src.lookback, start - datetime.min.replace(tzinfo=start.tzinfo))
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
    rows = entities.assign(__row=np.arange(len(entities)))
    con.register("entity_rows", rows)
    ts_sql = f"{quote(ts_col)}::TIMESTAMPTZ"
    first, last = _bounds(con, entities[ts_col], ts_sql)
    columns = [c for c in entities.columns if c != "__row"]
    by_keys = _join(columns, ts_sql, joins, first, last, [False] * len(joins))
    hashed = _typed_alike(con, joins)
    if not any(hashed):
        return by_keys
    query = _join(columns, ts_sql, joins, first, last, hashed)
    by_keys.tables = {"entity_rows": rows}
    query.fallback = by_keys
    return query


def _typed_alike(con: duckdb.DuckDBPyConnection, joins: list[ViewJoin]) -> list[bool]:
    """For each view, whether the entity rows and its source type the keys alike (then equal keys
    hash alike). Only binds the queries: nothing is read."""
    entity = con.sql("SELECT * FROM entity_rows LIMIT 0")
    types = dict(zip(entity.columns, (str(t) for t in entity.types), strict=True))
    alike = []
    for view in joins:
        keys = ", ".join(quote(k) for k in view.source_keys)
        source = con.sql(f"SELECT {keys} FROM {view.source.from_clause()} LIMIT 0")  # noqa: S608
        alike.append([str(t) for t in source.types] == [types.get(k) for k in view.entity_keys])
    return alike


def _key_hash(alias: str, keys: list[str]) -> str:
    """A 64-bit hash of the ``keys`` columns of ``alias``; NULL when any is NULL (matching nothing)."""
    cols = [f"{alias}.{quote(k)}" for k in keys]
    present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
    return f"CASE WHEN {present} THEN hash({', '.join(cols)}) END"


def _join(
    columns: list[str],
    ts_sql: str,
    joins: list[ViewJoin],
    first: datetime | None,
    last: datetime | None,
    hashed: list[bool],
) -> Query:
    """The join over the registered ``entity_rows``, on key hashes for the views ``hashed`` names."""
    params: dict[str, Any] = {}
    entity_cols = [f"{ts_sql} AS __ts"]
    asof = ""  # the ASOF joins, one per view
    picked = []  # per view: its features (renamed apart) and whether its row serves (__ok<i>)
    outputs = [f"j.{quote(c)}" for c in columns]
    for i, (view, hash_keys) in enumerate(zip(joins, hashed, strict=True)):
        alias = f"v{i}"
        lo = hi = None
        if view.ttl is not None and first is not None:
            params[f"lo{i}"] = first - view.ttl - 2 * view.source.lookback
            params[f"hi{i}"] = last
            lo, hi = f"lo{i}", f"hi{i}"
        ts = quote(view.timestamp_field)
        keys = ", ".join(quote(k) for k in view.source_keys)
        # One row per (key, timestamp): the newest created, else a deterministic pick among equals;
        # rows the source declares equal need no pick (the ASOF join takes any: see ties_equal).
        tie = (
            f"{quote(view.created_timestamp_column)} DESC"
            if view.created_timestamp_column
            else ", ".join(quote(f) for f in view.features)
        )
        dedupe = f" QUALIFY row_number() OVER (PARTITION BY {keys}, {ts} ORDER BY {tie}) = 1"
        if view.source.ties_equal and not view.created_timestamp_column:
            dedupe = ""
        same_keys = " AND ".join(
            f"{alias}.{quote(s)} = e.{quote(k)}"
            for s, k in zip(view.source_keys, view.entity_keys, strict=True)
        )
        key_hash, on = "", same_keys
        if hash_keys:
            key_hash = f", {_key_hash('src', view.source_keys)} AS __key"
            entity_cols.append(f"{_key_hash('entity_rows', view.entity_keys)} AS __key{i}")
            on = f"{alias}.__key = e.__key{i}"
        rows = (
            f"(SELECT {keys}, {ts} AS __fv_ts, {', '.join(quote(f) for f in view.features)}{key_hash} "  # noqa: S608
            f"FROM {_source_rows(view.source, lo, hi)} AS src{dedupe})"
        )
        asof += f" ASOF LEFT JOIN {rows} AS {alias} ON {on} AND e.__ts >= {alias}.__fv_ts"
        ok = "TRUE"
        if view.ttl is not None:
            params[f"ttl{i}"] = int(view.ttl / timedelta(microseconds=1))
            ok = f"{alias}.__fv_ts >= e.__ts - to_microseconds(${f'ttl{i}'})"
        if hash_keys:  # the picked row must be this key's (see COLLISION)
            ok = (
                f"CASE WHEN {alias}.__key IS NULL THEN FALSE WHEN {same_keys} THEN {ok} "
                f"ELSE error('{COLLISION}') END"
            )
        picked.append(f"{ok} AS __ok{i}")
        for n, (feature, out) in enumerate(zip(view.features, view.output_names, strict=True)):
            picked.append(f"{alias}.{quote(feature)} AS __f{i}_{n}")
            outputs.append(f"CASE WHEN j.__ok{i} THEN j.__f{i}_{n} END AS {quote(out)}")
    # the checks in a subquery of their own: evaluated once a row, not once per feature
    joined = (
        f"(SELECT e.*, {', '.join(picked)} "  # noqa: S608
        f"FROM (SELECT *, {', '.join(entity_cols)} FROM entity_rows) AS e{asof}) AS j"
    )
    return Query(f"SELECT {', '.join(outputs)} FROM {joined} ORDER BY j.__row", params)  # noqa: S608


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
