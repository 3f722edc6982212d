"""Point-in-time training sets: entity rows -> Feast `get_historical_features` on the lake -> Parquet.

Every dataset records the DuckLake snapshot it read; rebuilding with that snapshot gives the same
bytes, however many ticks arrived since.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import FeatureService, FeatureStore, FeatureView
from feast.errors import FeatureServiceNotFoundException

from tickstore import lake
from tickstore.errors import storage_trouble
from tickstore.settings import Settings
from tickstore_feast import pit
from tickstore_feast.repo import feature_store
from tickstore_feast.source import fingerprints
from training import entity_order, staging

MAX_GRID_ROWS = 50_000_000  # ~5 GB of entity rows in pandas, before a feature is joined
CHUNK_ROWS = 1_000_000  # entity rows per get_historical_features call: each recomputes the windows it needs


@dataclass(frozen=True)
class Grid:
    """Entity rows every ``every`` per product over [start, end)."""

    start: datetime
    end: datetime
    every: timedelta
    products: tuple[str, ...] = ()  # empty: every product with ticks in the range

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"the range is empty: end {self.end} is not after start {self.start}")
        if self.every <= timedelta(0):
            raise ValueError(f"the step must be positive, not {self.every.total_seconds()} s")


@dataclass
class Manifest:
    """What a dataset is: written next to it as <name>.manifest.json."""

    path: str
    feature_service: str | None  # None: the features were named one by one (`features`)
    features: list[str]
    snapshot: int
    rows: int
    entities: str
    sql_sha256: dict[str, str]
    null_fraction: dict[str, float]
    seconds: float
    built_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    # products of the entity rows with no tick at the snapshot (a typo, or lower case): NULL features
    products_without_ticks: list[str] = field(default_factory=list)
    # products with ticks whose every row has no feature value (no tick within a view's TTL before
    # any of them: a range before its ticks begin, say)
    products_without_values: list[str] = field(default_factory=list)
    # each view's definition fingerprint (tickstore_feast.source.fingerprints): what the scorer checks
    sql_fingerprint: dict[str, str] = field(default_factory=dict)
    sql: dict[str, str] = field(default_factory=dict)  # each SQL view's text, as it computed this dataset
    full_feature_names: bool = False  # columns named view__feature, not feature
    # how far back each view's row reads (its SQL's lookback, else its TTL), in seconds: rows closer
    # together than that share ticks, which the drift test allows for (training/block_ks.py)
    lookback_s: dict[str, float] = field(default_factory=dict)
    # the Parquet file's bytes as written: an edit since shows, of its keys too ("" before stop 41)
    sha256: str = ""

    def feature_columns(self) -> list[str]:
        """The dataset's feature columns (not the entity rows' own), in ``features`` order."""
        return feature_columns(self.features, self.full_feature_names)

    def write(self) -> Path:
        path = Path(self.path).with_suffix(".manifest.json")
        partial = staging.path_for(path)
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(partial, path)  # never half a manifest
        return path


def feature_columns(refs: list[str], full_feature_names: bool) -> list[str]:
    """The columns a retrieval names `view:feature` refs."""
    views_features = (r.split(":", 1) for r in refs)
    return [pit.column_name(view, feature, full_feature_names) for view, feature in views_features]


def grid_entities(settings: Settings, grid: Grid, snapshot: int) -> pd.DataFrame:
    """Entity rows for ``grid``, read from the lake at ``snapshot``."""
    con = lake.connect(settings, snapshot=snapshot, create=False)
    try:
        products = list(grid.products) or [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT product_id FROM ticks WHERE event_time >= $s AND event_time < $e ORDER BY 1",
                {"s": grid.start, "e": grid.end},
            ).fetchall()
        ]
        steps = -(-(grid.end - grid.start) // grid.every)  # ceiling division of timedeltas
        if len(products) * steps > MAX_GRID_ROWS:
            # the grid is a DataFrame before it is cut into chunks: a year every second is ~10 GB
            raise ValueError(
                f"every {grid.every.total_seconds():g} s over [{grid.start}, {grid.end}) for "
                f"{len(products)} product{'s' * (len(products) != 1)} is {len(products) * steps:,} entity rows, more than "
                f"{MAX_GRID_ROWS:,} in one set: raise --every, or build the range in parts"
            )
        return con.execute(
            "SELECT p.product_id, t.range AS event_timestamp "
            "FROM unnest($products::VARCHAR[]) AS p(product_id) "
            "CROSS JOIN range($s::TIMESTAMPTZ, $e::TIMESTAMPTZ, to_microseconds($step)) AS t "
            "ORDER BY 2, 1",
            {
                "products": products,
                "s": grid.start,
                "e": grid.end,
                "step": grid.every // timedelta(microseconds=1),
            },
        ).df()
    finally:
        con.close()


def build(
    settings: Settings,
    entities: pd.DataFrame | Grid,
    out: Path,
    *,
    feature_service: str = "volatility_model",
    as_of: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    stage: Callable[[str], None] | None = None,
    full_feature_names: bool = False,
    features: Sequence[str] = (),
) -> Manifest:
    """Write the point-in-time training set for ``entities`` to ``out`` (Parquet) plus its manifest.

    ``features`` (`view:feature`, or a view for all of its features) are read instead of the
    service's. ``full_feature_names`` names each column `<view>__<feature>`, as Feast does, for views
    that share feature names. ``progress`` is told the entity rows done after each chunk; ``stage``
    what the build does once they all are, where that takes a while (sorting the set back).
    """
    started = datetime.now(UTC)
    con = lake.connect(settings, create=False)
    snapshot = as_of if as_of is not None else lake.current_snapshot(con)
    con.close()
    if isinstance(entities, Grid):
        described = f"every {entities.every} over [{entities.start}, {entities.end}) for {entities.products or 'all products'}"
        frame = grid_entities(settings, entities, snapshot)
        if frame.empty:
            raise ValueError(
                f"no ticks in [{entities.start}, {entities.end}) at lake snapshot {snapshot}, so no products to "
                f"build the grid for ({lake.tick_span(settings, snapshot)}): pick a range with ticks, or name the products"
            )
    else:
        described = f"{len(entities):,} rows given"
        frame = entities
    without_ticks = sorted(set(frame["product_id"]) - set(known_products(settings, snapshot)))
    store = feature_store(settings, snapshot=snapshot)
    service: FeatureService | None = None
    if features:
        refs = feature_refs(store, features)
        selected: FeatureService | list[str] = refs
    else:
        try:
            service = selected = store.get_feature_service(feature_service)
        except FeatureServiceNotFoundException as exc:
            known = (
                ", ".join(sorted(f.name for f in store.list_feature_services())) or "none: run feast apply"
            )
            raise ValueError(f"no feature service {feature_service!r} (known: {known})") from exc
        refs = [f"{p.name}:{f.name}" for p in service.feature_view_projections for f in p.features]
    if not full_feature_names:
        _names_apart(f"feature service {feature_service!r}" if service else "the features asked for", refs)
    present = set(frame.columns)
    taken = [c for c in feature_columns(refs, full_feature_names) if c in present]
    if taken:
        # an earlier training set as the entity rows, say: Arrow failed on the twice-named column
        raise ValueError(
            f"the entity rows already have column(s) named as features this build adds "
            f"({', '.join(taken[:5])}{' ...' if len(taken) > 5 else ''}): drop them, or give "
            "--full-feature-names (columns named <view>__<feature>)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside `out` and renamed over it once complete: an interrupted build (Ctrl-C, an error in
    # a later chunk) would otherwise leave a valid-looking Parquet with only its first chunks, next to
    # the manifest of the dataset it replaced.
    staging.remove_orphans(out)
    partial = staging.path_for(out)
    # rows out of time order are built in time order, then put back in theirs (training/entity_order.py)
    order = entity_order.time_order(frame, CHUNK_ROWS)
    if order is not None:
        frame = entity_order.in_time_order(frame, order)
    by_time = staging.path_for(out, "by-time")
    writer: pq.ParquetWriter | None = None
    nulls: dict[str, int] = {}
    rows_of: Counter[str] = Counter()  # product -> its rows, and those without any feature value
    valueless: Counter[str] = Counter()
    total = len(frame)
    try:
        for begin in range(0, max(total, 1), CHUNK_ROWS):
            chunk = frame.iloc[begin : begin + CHUNK_ROWS]
            table = store.get_historical_features(
                entity_df=chunk, features=selected, full_feature_names=full_feature_names
            ).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(partial if order is None else by_time, table.schema)
            writer.write_table(table)
            for name in table.column_names:
                nulls[name] = nulls.get(name, 0) + table.column(name).null_count
            _count_valueless(table, feature_columns(refs, full_feature_names), rows_of, valueless)
            if progress:
                progress(min(begin + CHUNK_ROWS, total), total)
        if writer is not None:
            writer.close()
        if order is not None:
            if stage:  # the rows are all read: what the build does after its last chunk
                stage(entity_order.RESTORING)
            entity_order.restore(by_time, partial, CHUNK_ROWS)
            by_time.unlink()
        nulls.pop(entity_order.PLACE, None)
        views = [store.get_feature_view(n) for n in sorted({r.split(":", 1)[0] for r in refs})]
        manifest = Manifest(
            path=str(out),
            feature_service=service.name if service else None,
            features=refs,
            snapshot=snapshot,
            rows=total,
            entities=described,
            sql_sha256={v.name: _sql_hash(v) for v in views},
            null_fraction={k: round(v / total, 6) if total else 0.0 for k, v in nulls.items()},
            seconds=round((datetime.now(UTC) - started).total_seconds(), 3),
            products_without_ticks=without_ticks,
            products_without_values=sorted(
                p for p, n in rows_of.items() if valueless[p] == n and p not in without_ticks
            ),
            sql_fingerprint=fingerprints(views),
            sql={v.name: q for v in views if (q := getattr(v.batch_source, "query", None))},
            full_feature_names=full_feature_names,
            lookback_s={v.name: _lookback(v).total_seconds() for v in views},
            sha256=file_sha256(partial),
        )
        # the old manifest goes first: a crash between the two steps leaves a dataset without a manifest,
        # never one described by another's
        Path(manifest.path).with_suffix(".manifest.json").unlink(missing_ok=True)
        os.replace(partial, out)
    except BaseException as exc:
        if writer is not None:
            with contextlib.suppress(OSError):  # closing flushes: on a full disk that fails as well
                writer.close()
        partial.unlink(missing_ok=True)
        by_time.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None and storage_trouble(exc):
            # Arrow's error names no file ("Error writing bytes to file"): name the one asked for
            raise OSError(exc.errno, exc.strerror, str(out)) from exc
        raise
    manifest.write()
    return manifest


def feature_refs(store: FeatureStore, asked: Sequence[str]) -> list[str]:
    """``asked`` (`view:feature`, or a view for all of its features) as Feast's `view:feature` refs,
    each once, every name checked against the registry (Feast's own error came mid-build)."""
    views = {v.name: v for v in store.list_feature_views()}
    refs: list[str] = []
    for item in asked:
        name, _, feature = (part.strip() for part in item.partition(":"))  # ` ticks_60s : ret_std_60s `
        view = views.get(name)
        if view is None:
            raise ValueError(
                f"no feature view {name!r} (known: {', '.join(sorted(views)) or 'none: run feast apply'})"
            )
        has = [f.name for f in view.features]
        if feature and feature not in has:
            raise ValueError(f"feature view {name} has no feature {feature!r} (it has: {', '.join(has)})")
        refs += [f"{name}:{f}" for f in ([feature] if feature else has) if f"{name}:{f}" not in refs]
    return refs


def _names_apart(what: str, features: list[str]) -> None:
    """Refuse views that share a feature name, before anything is read or written: Feast raised it
    mid-build, as a traceback, where a user had to find the option it named."""
    views: dict[str, list[str]] = {}
    for ref in features:
        view, name = ref.split(":", 1)
        views.setdefault(name, []).append(view)
    shared = {name: where for name, where in views.items() if len(where) > 1}
    if shared:
        named = "; ".join(f"{name} in {', '.join(where)}" for name, where in list(shared.items())[:3])
        more = f" and {len(shared) - 3} more" if len(shared) > 3 else ""
        raise ValueError(
            f"{what} has features of one name in several views ({named}{more}): "
            "rename them apart, or give `dataset build` --full-feature-names (columns named "
            "<view>__<feature>); `tickstore train` needs them apart"
        )


def _count_valueless(
    table: pa.Table, columns: list[str], rows_of: Counter[str], valueless: Counter[str]
) -> None:
    """Add each product's rows of ``table`` to ``rows_of``, and those without a value in any of the
    feature ``columns`` to ``valueless``."""
    none = pc.is_null(table.column(columns[0]))
    for name in columns[1:]:
        none = pc.and_(none, pc.is_null(table.column(name)))
    for counts, into in ((table, rows_of), (table.filter(none), valueless)):
        for item in pc.value_counts(counts.column("product_id")).to_pylist():
            into[str(item["values"])] += item["counts"]


def tick_spans(
    settings: Settings, snapshot: int, products: list[str]
) -> dict[str, tuple[datetime, datetime]]:
    """The first and last tick time (UTC) of each of ``products`` at ``snapshot``."""
    con = lake.connect(settings, snapshot=snapshot, create=False)
    try:
        found = con.execute(
            "SELECT product_id, min(event_time), max(event_time) FROM ticks "
            "WHERE list_contains($products, product_id) GROUP BY ALL",
            {"products": products},
        ).fetchall()
    finally:
        con.close()
    return {p: (first.astimezone(UTC), last.astimezone(UTC)) for p, first, last in found}


def known_products(settings: Settings, snapshot: int) -> list[str]:
    """Every product with ticks at ``snapshot``."""
    con = lake.connect(settings, snapshot=snapshot, create=False)
    try:
        return [r[0] for r in con.execute("SELECT DISTINCT product_id FROM ticks ORDER BY 1").fetchall()]
    finally:
        con.close()


def sha256(text: str) -> str:
    """Hex SHA-256 of ``text`` (how datasets and runs identify the SQL they used)."""
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file at ``path``, read in blocks (a set may be larger than memory)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _lookback(view: FeatureView) -> timedelta:
    """How far back one row of ``view`` reads: its SQL source's lookback, else its TTL (0 if none)."""
    lookback = getattr(view.batch_source, "lookback", None)
    return lookback if isinstance(lookback, timedelta) else (view.ttl or timedelta(0))


def _sql_hash(view: FeatureView) -> str:
    source = view.batch_source
    return sha256(getattr(source, "query", None) or getattr(source, "table", "") or "")
