"""`DuckDBOfflineStore`: Feast's offline store over the tickstore DuckLake, with DuckDB's native ASOF JOIN.

Configured in feature_store.yaml as ``offline_store: {type: tickstore_feast.offline_store.DuckDBOfflineStore}``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd
import pyarrow as pa
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.offline_store import OfflineStore, RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from feast.saved_dataset import SavedDatasetStorage
from feast.utils import compute_non_entity_date_range

from tickstore import lake
from tickstore.errors import TickstoreError
from tickstore.settings import Settings
from tickstore_feast import pit
from tickstore_feast.source import DuckDBSource

log = logging.getLogger(__name__)
# said with the first empty materialization range of a process only
_advice = [
    ". A view never materialized starts `materialize-incremental` at now minus its TTL (a year for a "
    "TTL of 0, as tick_clock's); for recorded ticks run `materialize START END` once (the lake's first "
    'and last: tickstore sql "SELECT min(event_time), max(event_time) FROM ticks")'
]


class DuckDBOfflineStoreConfig(FeastConfigBaseModel):
    """The `offline_store:` block of feature_store.yaml."""

    type: Literal["tickstore_feast.offline_store.DuckDBOfflineStore"] = (
        "tickstore_feast.offline_store.DuckDBOfflineStore"
    )
    home: str | None = None
    """tickstore data directory (relative to the feature repo); unset: ../.tickstore, as the yaml's paths."""
    snapshot: int | None = None
    """Read the lake as of this DuckLake snapshot (reproducible training sets); unset: the newest."""


def lake_home(config: RepoConfig) -> Path:
    """The tickstore data directory this feature repo reads."""
    store = config.offline_store
    repo = Path(config.repo_path or ".")
    if getattr(store, "home", None):
        return (repo / store.home).resolve()
    # not TICKSTORE_HOME: the registry and online store of the yaml are in the default directory, so
    # `feast materialize` read one home's lake into another's online store (`tickstore feast` re-roots all)
    return (repo / ".." / ".tickstore").resolve()


def settings_for(config: RepoConfig) -> Settings:
    """tickstore's settings for this repo's lake: the environment's, with its home."""
    # Made once per home and environment, not per call: building Settings reads and validates the
    # environment, 5-7 ms, a twentieth of a 100k-row retrieval.
    env = tuple(sorted((k.upper(), v) for k, v in os.environ.items() if k.upper().startswith("TICKSTORE_")))
    return _settings(lake_home(config), env)


@functools.lru_cache(maxsize=16)
def _settings(home: Path, env: tuple[tuple[str, str], ...]) -> Settings:
    return Settings(home=home)  # ``env`` is only the cache key: Settings reads the environment itself


def lake_connection(config: RepoConfig, create: bool = False) -> duckdb.DuckDBPyConnection:
    """A read connection to the lake, pinned to ``offline_store.snapshot`` when set; ``create`` makes
    an empty lake where there is none."""
    return lake.connect(
        settings_for(config),
        snapshot=getattr(config.offline_store, "snapshot", None),
        create=create,
    )


class DuckDBRetrievalJob(RetrievalJob):
    """A query against the lake, run when Feast asks for the rows."""

    def __init__(
        self,
        config: RepoConfig,
        build: Callable[[duckdb.DuckDBPyConnection], pit.Query],
        full_feature_names: bool = False,
        metadata: RetrievalMetadata | None = None,
    ) -> None:
        self.config = config
        self.build = build
        self._full_feature_names = full_feature_names
        self._metadata = metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return []

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        con = lake_connection(self.config)
        try:
            # one transaction: DuckLake reads its catalog once, not again for each statement (the entity
            # rows' registration was one: ~8 ms of a 100k-row retrieval)
            con.execute("BEGIN")
            query = self.build(con)
            try:
                return con.execute(query.sql, query.params).to_arrow_table()
            except duckdb.Error as exc:
                if isinstance(exc, duckdb.BinderException) and "Referenced column" in str(exc):
                    # a view registered by Feast's own apply, which does not check its schema
                    raise TickstoreError(
                        f"{exc}\nDoes a feature view's schema name a feature its source does not give? "
                        "`tickstore feast plan` checks each view of feature_repo/ against its source."
                    ) from exc
                if query.fallback is None or pit.COLLISION not in str(exc):
                    raise
                con.execute("ROLLBACK")  # the error ended the transaction, and the registrations in it
                for name, rows in query.fallback.tables.items():
                    con.register(name, rows)
                return con.execute(query.fallback.sql, query.fallback.params).to_arrow_table()
        finally:
            con.close()

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def to_sql(self) -> str:
        con = lake_connection(self.config)
        try:
            return self.build(con).sql
        finally:
            con.close()

    def persist(
        self, storage: SavedDatasetStorage, allow_overwrite: bool | None = False, timeout: int | None = None
    ) -> None:
        import pyarrow.parquet as pq

        path = Path(getattr(storage, "file_options", storage).uri)  # type: ignore[attr-defined,union-attr]
        if path.exists() and not allow_overwrite:
            raise FileExistsError(f"{path} exists; pass allow_overwrite=True")
        pq.write_table(self._to_arrow_internal(timeout), path)


def _source(data_source: DataSource) -> DuckDBSource:
    if not isinstance(data_source, DuckDBSource):
        raise TypeError(
            f"DuckDBOfflineStore reads DuckDBSource only, not {type(data_source).__name__} ({data_source.name})"
        )
    return data_source


def _pull(
    config: RepoConfig,
    data_source: DataSource,
    keys: list[str],
    features: list[str],
    timestamp_field: str,
    created: str | None,
    start: datetime | None,
    end: datetime | None,
    *,
    latest: bool,
) -> RetrievalJob:
    if start is not None and end is not None and start > end:
        # Feast's materialize-incremental starts a view never materialized at now - its TTL: over
        # recorded ticks that is after the end asked for, and it loaded nothing without a word
        log.warning(
            "%s: nothing to materialize, the range starts after it ends (%s > %s)%s",
            data_source.name,
            f"{start:%Y-%m-%d %H:%M:%S}",
            f"{end:%Y-%m-%d %H:%M:%S}",
            _advice.pop() if _advice else "",
        )
    query = pit.pull(
        _source(data_source), keys, features, timestamp_field, created, start, end, latest=latest
    )
    return DuckDBRetrievalJob(config, lambda con: query)


def _every_key_at(
    con: duckdb.DuckDBPyConnection, joins: list[pit.ViewJoin], start: datetime, end: datetime
) -> pd.DataFrame:
    """Entity rows for a retrieval without any: each key with a row in [start, end] in any of the
    views, at ``end`` (Feast's non-entity mode: the newest values as of ``end``, TTL honoured)."""
    keys = {tuple(j.entity_keys) for j in joins}
    if len(keys) != 1:
        raise ValueError(
            "a retrieval without entity rows needs views keyed alike; these are keyed by "
            + " and ".join(", ".join(k) for k in sorted(keys))
        )
    (entity_keys,) = keys
    frames = []
    for j in joins:
        q = pit.pull(j.source, j.source_keys, [], j.timestamp_field, None, start, end, latest=False)
        named = ", ".join(
            f"{pit.quote(s)} AS {pit.quote(e)}" for s, e in zip(j.source_keys, entity_keys, strict=True)
        )
        frames.append(con.execute(f"SELECT DISTINCT {named} FROM ({q.sql})", q.params).df())  # noqa: S608
    rows = pd.concat(frames).drop_duplicates().sort_values(list(entity_keys), ignore_index=True)
    return rows.assign(event_timestamp=pd.Timestamp(end))


class DuckDBOfflineStore(OfflineStore):
    """Point-in-time joins and pulls over the lake, one DuckDB query each."""

    supports_filter_by_created_timestamp = False

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        return _pull(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
            latest=True,
        )

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        return _pull(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
            latest=False,
        )

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        wanted: dict[str, list[str]] = {}
        for ref in feature_refs:
            view, feature = ref.split(":", 1)
            wanted.setdefault(view, []).append(feature)
        joins = []
        for fv in feature_views:
            name = fv.projection.name_to_use()
            features = wanted.get(name) or wanted.get(fv.name) or []
            if not features:
                continue
            src = _source(fv.batch_source)  # type: ignore[arg-type]
            keys = [fv.projection.join_key_map.get(c.name, c.name) for c in fv.entity_columns]
            source_keys = [c.name for c in fv.entity_columns]
            joins.append(
                pit.ViewJoin(
                    name=name,
                    source=src,
                    entity_keys=keys,
                    source_keys=source_keys,
                    features=features,
                    output_names=[pit.column_name(name, f, full_feature_names) for f in features],
                    timestamp_field=src.timestamp_field,
                    created_timestamp_column=src.created_timestamp_column or None,
                    ttl=fv.ttl if fv.ttl and fv.ttl > timedelta(0) else None,
                )
            )

        span = None
        if entity_df is None:  # Feast's "non-entity" retrieval: every key as of end_date
            span = compute_non_entity_date_range(
                feature_views, kwargs.get("start_date"), kwargs.get("end_date")
            )

        def build(con: duckdb.DuckDBPyConnection) -> pit.Query:
            if isinstance(entity_df, pd.DataFrame):
                entities = entity_df
            elif isinstance(entity_df, str):  # a query giving the entity rows
                entities = con.sql(entity_df).df()
            else:
                assert span is not None
                entities = _every_key_at(con, joins, *span)
            ts_col = infer_event_timestamp_from_entity_df(
                dict(zip(entities.columns, entities.dtypes, strict=True))
            )
            return pit.historical(con, entities, ts_col, joins)

        metadata = RetrievalMetadata(
            features=feature_refs, keys=sorted({k for j in joins for k in j.entity_keys})
        )
        return DuckDBRetrievalJob(config, build, full_feature_names, metadata)

    @staticmethod
    def offline_write_batch(
        config: RepoConfig,
        feature_view: FeatureView,
        table: pa.Table,
        progress: Callable[[int], Any] | None,
    ) -> None:
        src = _source(feature_view.batch_source)  # type: ignore[arg-type]
        if src.table is None:
            raise ValueError(
                f"{feature_view.name} reads SQL ({src.name}); only table sources can be written to"
            )
        con = lake.connect(settings_for(config))
        try:
            con.register("batch", table)
            columns = ", ".join(pit.quote(c) for c in table.column_names)
            insert = f"INSERT INTO {src.from_clause()} ({columns}) SELECT {columns} FROM batch"  # noqa: S608
            lake.retry_locked(lambda: con.execute(insert))
        finally:
            con.close()
        if progress:
            progress(table.num_rows)
