"""`DuckDBSource`: a Feast data source that is a feature SQL file from `sql/`, or a lake table."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import duckdb
from feast.data_source import DataSource
from feast.field import Field
from feast.protos.feast.core.DataSource_pb2 import DataSource as DataSourceProto
from feast.repo_config import RepoConfig
from feast.types import FeastType
from feast.value_type import ValueType

from tickstore import feature_sql
from tickstore.errors import TickstoreError

CLASS_PATH = "tickstore_feast.source.DuckDBSource"


class SourceInvalid(TickstoreError, click.ClickException):
    """A source `feast apply` / `plan` must not register: a TickstoreError to tickstore, and to Feast's
    CLI (click) an error it prints as "Error: <message>" with exit code 1."""

    def __init__(self, message: str) -> None:
        click.ClickException.__init__(self, message)


# DuckDB type names (as DESCRIBE prints them) to Feast value types.
_TYPES = {
    "VARCHAR": ValueType.STRING,
    "BIGINT": ValueType.INT64,
    "INTEGER": ValueType.INT32,
    "UBIGINT": ValueType.INT64,
    "DOUBLE": ValueType.DOUBLE,
    "FLOAT": ValueType.FLOAT,
    "BOOLEAN": ValueType.BOOL,
    "TIMESTAMP WITH TIME ZONE": ValueType.UNIX_TIMESTAMP,
    "TIMESTAMP": ValueType.UNIX_TIMESTAMP,
    "BLOB": ValueType.BYTES,
}


def duckdb_type_to_feast(type_name: str) -> ValueType:
    """Feast value type of a DuckDB column type (decimals are read as doubles)."""
    if type_name.startswith("DECIMAL"):
        return ValueType.DOUBLE
    return _TYPES.get(type_name, ValueType.UNKNOWN)


# how much of the lake `widest_tie` looks at (its newest data, else up to its newest tie): a sample
TIES_CHECKED = timedelta(minutes=10)
# how many of the newest ticks written `newest_tie` searches when the newest minutes hold no tie
TIES_SEARCHED = 1_000_000


class DuckDBSource(DataSource):
    """Rows for a feature view: the SELECT in a `sql/*.sql` file, or a table in the DuckLake.

    The SQL text is stored in the registry at `feast apply`, so `feast plan` shows when a feature's SQL
    changed. ``lookback`` is how far back in time the query reads ticks to produce one row (its window):
    the offline store uses it to compute features over only the ticks a request needs. SQL sources must
    declare it, by a ``-- lookback: 60 s`` line in the SQL's header (as `sql/` does, where ad-hoc SQL
    reads it too) or by ``lookback=`` (``timedelta(0)`` for a per-tick view): left out, it was 0, and
    the windows of the rows nearest a request's start were computed over only part of their ticks,
    with nothing said.

    ``ties_equal`` declares that rows sharing a key and a timestamp carry equal features (the window
    views of `sql/`: ticks sharing an event time share one frame). A point-in-time join then takes
    any of them instead of first sorting them out to pick one, which was half of a 1M-row training
    set's time over 10M rows. Left False, ties are broken by the created timestamp, else by the
    feature values, as before; a source with a created timestamp is always sorted out by it.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        sql_file: str | Path | None = None,
        query: str | None = None,
        table: str | None = None,
        timestamp_field: str = "event_time",
        created_timestamp_column: str = "",
        lookback: timedelta | None = None,
        ties_equal: bool = False,
        field_mapping: dict[str, str] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        if sum(x is not None for x in (sql_file, query, table)) != 1:
            raise ValueError("DuckDBSource takes exactly one of sql_file=, query= or table=")
        what = f"sql_file={Path(sql_file).name}" if sql_file is not None else "query="
        self.sql_file = Path(sql_file) if sql_file is not None else None
        if self.sql_file is not None:
            query = self.sql_file.read_text()
            name = name or self.sql_file.stem
            # "-- ticks_60s: market microstructure features over ..." says what the file is
            first = feature_sql.header(query)[:1]
            said = first[0][2:].strip().partition(": ")[2] if first else ""
            description = description or said[:1].upper() + said[1:]
        declared = feature_sql.lookback(query) if query is not None else None
        if lookback is not None and declared is not None and lookback != declared:
            raise ValueError(
                f"DuckDBSource({what}): lookback={lookback!r}, but the SQL's header says "
                f"'-- lookback: {declared.total_seconds():g} s': leave lookback= out, or change the header"
            )
        lookback = lookback if lookback is not None else declared
        if table is None and lookback is None:
            raise ValueError(
                f"DuckDBSource({what}) needs a lookback, how far back one row's window reads ticks: a header "
                "line '-- lookback: 60 s' in the SQL (sql/ticks_60s.sql has one; '-- lookback: 0 s' for a "
                "per-tick view), or lookback=timedelta(seconds=60)"
            )
        self.query = query
        self.table = table
        self.lookback = lookback or timedelta(0)
        self.ties_equal = ties_equal
        name = name or table
        if not name:
            raise ValueError("a DuckDBSource built from query= needs a name=")
        super().__init__(
            name=name,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            field_mapping=field_mapping,
            description=description,
            tags=tags,
            owner=owner,
        )

    def __hash__(self) -> int:
        return super().__hash__()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, DuckDBSource)
            and super().__eq__(other)
            and (self.query, self.table, self.lookback, self.ties_equal)
            == (other.query, other.table, other.lookback, other.ties_equal)
        )

    def field(self, name: str, dtype: FeastType) -> Field:
        """A Feast field for the SQL's column ``name``, described by the comment beside it there
        (`tickstore.feature_sql.column_comments`): what a feature is, written once, where it is computed.

        A SQL file's column without one is refused, as the house rule is a comment per column; a
        ``query=`` or ``table=`` source's column may go without (its description is then empty).
        """
        said = feature_sql.column_comments(self.query or "").get(name, "")
        if not said and self.sql_file is not None:
            raise ValueError(
                f"{self.sql_file.name} has no comment beside column {name} in its outer SELECT: say what "
                f"it is there (`expr AS {name},  -- what it is`); Feast shows it as the feature's description"
            )
        return Field(name=name, dtype=dtype, description=said)

    def source_type(self) -> DataSourceProto.SourceType.ValueType:
        return DataSourceProto.CUSTOM_SOURCE

    def _to_proto_impl(self) -> DataSourceProto:
        options = {
            "query": self.query,
            "table": self.table,
            "lookback_s": self.lookback.total_seconds(),
            "ties_equal": self.ties_equal,
        }
        proto = DataSourceProto(
            name=self.name,
            type=DataSourceProto.CUSTOM_SOURCE,
            data_source_class_type=CLASS_PATH,
            field_mapping=self.field_mapping,
            custom_options=DataSourceProto.CustomSourceOptions(configuration=json.dumps(options).encode()),
            description=self.description,
            tags=self.tags,
            owner=self.owner,
        )
        proto.timestamp_field = self.timestamp_field
        proto.created_timestamp_column = self.created_timestamp_column
        return proto

    @staticmethod
    def from_proto(data_source: DataSourceProto) -> DuckDBSource:
        options: dict[str, Any] = json.loads(data_source.custom_options.configuration)
        return DuckDBSource(
            name=data_source.name,
            query=options["query"] if options.get("table") is None else None,
            table=options.get("table"),
            timestamp_field=data_source.timestamp_field,
            created_timestamp_column=data_source.created_timestamp_column,
            lookback=timedelta(seconds=options.get("lookback_s", 0)),
            ties_equal=bool(options.get("ties_equal", False)),
            field_mapping=dict(data_source.field_mapping),
            description=data_source.description,
            tags=dict(data_source.tags),
            owner=data_source.owner,
        )

    def validate(self, config: RepoConfig) -> None:
        """What `feast apply` and `feast plan` check of a source: its SQL runs on the lake, each view
        over it names only columns the SQL gives, and one declaring ties_equal holds no unequal tie in
        a sample of the lake. A failure is printed by Feast's CLI as "Error: ..." with exit code 1."""
        # Feast's CLI lets any exception but click's own through as a traceback
        try:
            # In a fresh clone there is no lake yet: an empty one (tickstore's fixed `ticks` schema)
            # checks the SQL just as well, and the sink fills it.
            columns = [name for name, _ in self._columns(config, create=True)]
            # Feast validates a source without the views over it, and registered a view whose schema
            # names a column the SQL lacks (the first training set failed on it): its views are found
            # where `feast apply` put them, in the modules it imported from the repo
            from feast import FeatureView

            from tickstore_feast.repo import check_columns, check_ties, join_keys, loaded_objects

            loaded = loaded_objects(config.repo_path)
            views = [(o, self) for o in loaded if isinstance(o, FeatureView) and o.batch_source is self]
            for view, _ in views:
                check_columns(view, self, columns)
            # and a view declaring equal ties is checked on a sample, as tickstore's own apply does
            check_ties(config, join_keys(loaded), views)
        except TickstoreError as exc:
            raise SourceInvalid(str(exc)) from exc

    @staticmethod
    def source_datatype_to_feast_value_type() -> Callable[[str], ValueType]:
        return duckdb_type_to_feast

    def get_table_column_names_and_types(self, config: RepoConfig) -> Iterable[tuple[str, str]]:
        return self._columns(config, create=False)

    def _columns(self, config: RepoConfig, create: bool) -> list[tuple[str, str]]:
        from tickstore_feast.offline_store import lake_connection

        con = lake_connection(config, create=create)
        try:
            rel = con.sql(f"SELECT * FROM {self.from_clause()} LIMIT 0")  # noqa: S608 - the source's own SQL
            return list(zip(rel.columns, [str(t) for t in rel.types], strict=True))
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
            # a mistake in the user's SQL: named by its source, not a traceback through Feast's apply
            what = f"table {self.table!r}" if self.table is not None else f"the SQL of {self.name!r}"
            from tickstore import tables

            if (problem := tables.table_problem(con)) is not None and problem[0] == "ticks":
                # the lake's table changed by hand, not the view's SQL: said so, and how to put it back
                table, said = problem
                raise TickstoreError(f"{what} does not run on {said}: {tables.put_back(con, table)}") from exc
            raise TickstoreError(
                f"{what} (feature source of `feast apply`) does not run on the lake: {exc}\n"  # noqa: S608 - a message
                f'Fix it, then try it with `tickstore sql "SELECT * FROM {self.name} LIMIT 5"`'
            ) from exc
        finally:
            con.close()

    def newest_tie(self, config: RepoConfig) -> datetime | None:
        """The time of the newest tie among the lake's newest ``TIES_SEARCHED`` ticks written (two of
        one product at one time; for a table source, two of its rows at one time, among all of them),
        or None: where `widest_tie` looks when the newest rows hold none. One pass over just the keys
        and times: ~0.2 s, ~1.3 s per 10M rows of a table."""
        from tickstore_feast.offline_store import lake_connection

        base, time, tied = self._tie_columns()
        # DuckLake numbers rows as they are written and skips files outside a rowid range: the search
        # costs the same however large the lake grows
        newest, params = "", {}
        if self.table is None:
            newest, params = (
                " WHERE rowid > (SELECT max(rowid) FROM lake.main.ticks) - $rows",
                {"rows": TIES_SEARCHED},
            )
        con = lake_connection(config, create=False)
        try:
            ties = f"SELECT {tied} FROM {base}{newest} GROUP BY ALL HAVING count(*) > 1"  # noqa: S608 - own names
            found = con.execute(f"SELECT max({time}) FROM ({ties})", params).fetchone()  # noqa: S608
        finally:
            con.close()
        return None if found is None else found[0]

    def _tie_columns(self) -> tuple[str, str, str]:
        """The rows the check reads, their time column, and the columns two ties share (for a table,
        its rows sharing a time: a table's keys are the view's, not known here)."""
        from tickstore_feast import pit

        if self.table is not None:
            time = pit.quote(self.timestamp_field)
            return self.from_clause(), time, time
        return "lake.main.ticks", "event_time", "product_id, event_time"

    def widest_tie(
        self, config: RepoConfig, keys: list[str], until: datetime | None = None
    ) -> dict[str, Any] | None:
        """Among this source's rows over ``TIES_CHECKED`` of the lake's ticks (or of the table) up to
        ``until`` (default: its newest), the (key, timestamp) with the most distinct rows, then the
        most rows: its values, with ``n_rows`` and ``n_distinct`` (None without rows).
        ``ties_equal=True`` says ``n_distinct`` is never above 1. A sample, so that applying stays
        quick; the repo's own views are also checked on bursts in tests."""
        from tickstore_feast import pit
        from tickstore_feast.offline_store import lake_connection

        base, time, _ = self._tie_columns()
        end = f"(SELECT max({time}) FROM {base})" if until is None else "$until"  # noqa: S608 - own names
        within = f"{time} BETWEEN {end} - $span AND {end}"
        if self.table is not None:
            rows = f"(SELECT * FROM {base} WHERE {within})"  # noqa: S608 - the source's own table
        else:
            rows = (
                f"(WITH ticks AS (SELECT * FROM {base} WHERE {within}) "  # noqa: S608 - the source's own SQL
                f"SELECT * FROM {self.from_clause()})"
            )
        group = ", ".join([*map(pit.quote, keys), pit.quote(self.timestamp_field)])
        con = lake_connection(config, create=False)
        try:
            # `s` is each whole row as a struct: two distinct ones at one key and time are unequal ties
            cur = con.execute(
                f"SELECT {group}, count(*) AS n_rows, count(DISTINCT s) AS n_distinct FROM {rows} AS s "  # noqa: S608
                f"GROUP BY {group} ORDER BY n_distinct DESC, n_rows DESC LIMIT 1",
                {"span": TIES_CHECKED} | ({} if until is None else {"until": until}),
            )
            found = cur.fetchone()
            return None if found is None else dict(zip([d[0] for d in cur.description], found, strict=True))
        finally:
            con.close()

    def from_clause(self) -> str:
        """What to put after FROM: the lake table, or the query as a subquery."""
        if self.table is not None:
            return '"' + self.table.replace('"', '""') + '"'
        return f"({self.query})"

    def get_table_query_string(self) -> str:
        return self.from_clause()


def fingerprints(views: Iterable[Any]) -> dict[str, str]:
    """Each feature view's definition fingerprint (`tickstore.feature_sql.fingerprints`), by view name:
    of its SQL, or of its lake table's name. Training logs them with a model; the scorer refuses to
    feed the model values another definition computes (`feature_sql.same_definition`)."""
    views = list(views)
    texts = [
        f"table {v.batch_source.table}"
        if getattr(v.batch_source, "table", None) is not None
        else getattr(v.batch_source, "query", None) or ""
        for v in views
    ]
    return dict(zip([v.name for v in views], feature_sql.fingerprints(texts), strict=True))
