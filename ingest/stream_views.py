"""Which feature views the stream computes: the registry's online SQL views, and whether one runs."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import duckdb
from feast import FeatureStore, FeatureView

from tickstore.errors import TickstoreError
from tickstore_feast.online import CLOCK_VIEW, latest_rows
from tickstore_feast.registry import RegistryDamaged
from tickstore_feast.repo import check_columns
from tickstore_feast.source import DuckDBSource

log = logging.getLogger("ingest.stream")  # the stream's own lines: one logger to follow (and filter)


def online_views(store: FeatureStore) -> list[FeatureView]:
    """Every online view computed from SQL, the tick clock last: a reader that sees the new clock
    then finds every view already new."""
    return sorted(
        (
            v
            for v in store.list_feature_views()
            if v.online and isinstance(v.batch_source, DuckDBSource) and v.batch_source.query is not None
        ),
        key=lambda v: (v.name == CLOCK_VIEW, v.name),
    )


def reread(store: FeatureStore, registry: Path, stamp: int) -> tuple[list[FeatureView], str | None]:
    """The views in ``registry`` (its file's ``stamp`` now, 0 when gone), read again; or none, and
    what is wrong with it (removed, damaged, empty) with what to do."""
    apply = "`tickstore feast apply` registers feature_repo/'s views again"
    # removed (the way to replace a damaged one): Feast's refresh raised, and the stream died of it
    removed = f"the feature registry {registry} was removed: {apply}"
    if not stamp:
        return [], removed
    try:
        store.refresh_registry()
    except FileNotFoundError:  # removed between the look and the read
        return [], removed
    except RegistryDamaged as exc:  # its words say what to do
        return [], str(exc)
    views = online_views(store)
    return views, None if views else f"the feature registry {registry} holds no feature view: {apply}"


def definitions(views: list[FeatureView]) -> dict[str, tuple[str | None, timedelta]]:
    """Each view's SQL and lookback by name: what a registry change must differ in to matter."""
    sources = {v.name: v.batch_source for v in views}
    return {n: (src.query, src.lookback) for n, src in sources.items() if isinstance(src, DuckDBSource)}


def computable(con: duckdb.DuckDBPyConnection, view: FeatureView) -> bool:
    """Whether ``view``'s SQL runs on the tail in ``con`` and gives every column its schema names.

    Feast's own `feast apply` registers a view whose schema names a column its SQL lacks (tickstore's
    apply refuses it): each of its writes would fail, and the stream with them. Left out, said why.
    """
    source: DuckDBSource = view.batch_source  # type: ignore[assignment]
    cursor = con.cursor()
    try:
        check_columns(view, source, latest_rows(cursor, source, []).column_names)
    except (TickstoreError, duckdb.Error) as exc:
        log.error("stream: %s\n%s is not computed until it is fixed and applied again", exc, view.name)
        return False
    finally:
        cursor.close()
    return True
