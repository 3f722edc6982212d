"""`tickstore dataset verify`: rebuild a training set from its manifest and compare, byte for byte.

A dataset records the lake snapshot it read, its features and the SQL that computed them; its own
rows are its entity rows. Rebuilt from those at that snapshot it must come out the same bytes, however
many ticks arrived since. When it does not, the report says where: a view whose SQL changed since
(with the diff), columns, rows, values; and whether the file itself was changed since it was written
(the manifest records its SHA-256: a key edited in the file would otherwise be rebuilt as it now reads).
"""

from __future__ import annotations

import dataclasses
import difflib
import filecmp
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tickstore.feature_sql import same_definition
from tickstore.settings import Settings
from tickstore_feast.repo import repo_modules, repo_objects
from tickstore_feast.source import fingerprints
from training import dataset

SHOWN_DIFFERENCES = 5  # columns whose values differ, listed one a line
METADATA_ONLY = "every value is the same; the Parquet files' own metadata differ (another writer?)"


@dataclass
class Report:
    """What a rebuild of a dataset found."""

    manifest: dataset.Manifest
    identical: bool = False  # the rebuilt file has the very same bytes
    changed: dict[str, str] = field(default_factory=dict)  # view -> unified diff of its SQL since the build
    removed: list[str] = field(default_factory=list)  # views the dataset read that feature_repo/ lacks now
    differences: list[str] = field(default_factory=list)  # how the rebuilt set differs, a line each
    # the file's bytes are not those the build wrote (its manifest's SHA-256): changed since, keys or values
    edited: bool = False
    # the rebuild's bytes are those the build wrote (None: the manifest records no SHA-256, an older set)
    as_built: bool | None = None
    seconds: float = 0.0


def read_manifest(path: Path) -> dataset.Manifest:
    """The manifest written beside the dataset at ``path`` (fields it lacks take their defaults)."""
    beside = path.with_suffix(".manifest.json")
    if not path.is_file():
        raise ValueError(f"no dataset at {path}")
    if not beside.is_file():
        raise ValueError(
            f"{path} has no manifest beside it ({beside.name}): only a set written by `tickstore dataset "
            "build` (or `tickstore train`) records what it read, so only such a set can be rebuilt"
        )
    try:
        recorded = json.loads(beside.read_text())
        known = {f.name for f in dataclasses.fields(dataset.Manifest)}
        return dataset.Manifest(**{k: v for k, v in recorded.items() if k in known})
    except (
        ValueError,
        TypeError,
        AttributeError,
    ) as exc:  # not JSON, no object, a field every one has missing
        raise ValueError(f"{beside} is no dataset manifest tickstore can read: {exc}") from exc


def definitions_since(manifest: dataset.Manifest) -> tuple[dict[str, str], list[str]]:
    """The views whose definition in feature_repo/ differs from the one that computed the dataset (with
    the SQL's diff, where the manifest holds it), and those feature_repo/ no longer defines."""
    views = {
        obj.name: obj
        for obj in repo_objects(repo_modules())
        if obj.name in manifest.sql_fingerprint and hasattr(obj, "batch_source")
    }
    now = fingerprints(views.values())
    changed: dict[str, str] = {}
    for name, then in sorted(manifest.sql_fingerprint.items()):
        if name not in now or same_definition(then, now[name]):
            continue
        old, new = manifest.sql.get(name), getattr(views[name].batch_source, "query", None)
        diff = difflib.unified_diff(
            (old or "").splitlines(),
            (new or "").splitlines(),
            f"{name} as it computed the dataset",
            f"{name} in feature_repo/ now",
            lineterm="",
        )
        changed[name] = "\n".join(diff) if old is not None and new is not None else ""
    return changed, sorted(set(manifest.sql_fingerprint) - set(views))


def verify(
    settings: Settings,
    path: Path,
    progress: Callable[[int, int], None] | None = None,
    stage: Callable[[str], None] | None = None,
    manifest: dataset.Manifest | None = None,
) -> Report:
    """Rebuild the dataset at ``path`` as its manifest says (its entity rows, features, snapshot) and
    compare the result with it: the same bytes, or where they differ. Where the manifest records the
    bytes the build wrote (its SHA-256), both the file and the rebuild are checked against them too.
    ``manifest``: the one read already (`read_manifest`), else it is read here."""
    manifest = manifest or read_manifest(path)
    report = Report(manifest)
    report.changed, report.removed = definitions_since(manifest)
    if report.removed:
        return report  # nothing to rebuild them from: the build would fail on the missing view
    started = time.perf_counter()
    if manifest.sha256:
        # a key edited in the file is rebuilt as it now reads: only the bytes the build wrote tell
        report.edited = dataset.file_sha256(path) != manifest.sha256
    try:
        stored = pq.ParquetFile(path)
    except pa.ArrowException as exc:  # its footer alone said "Parquet magic bytes not found"
        raise ValueError(f"{path} is no Parquet file: {exc}") from exc
    if stored.metadata.num_rows != manifest.rows:  # its own rows are the entity rows: one gone is not rebuilt
        report.differences = [
            f"the manifest says {manifest.rows:,} rows were built; the file has {stored.metadata.num_rows:,}"
        ]
        return report
    features = set(manifest.feature_columns())
    # only the entity columns are read: the features come from the rebuild
    entities = stored.read(columns=[c for c in stored.schema_arrow.names if c not in features]).to_pandas()
    # beside the dataset, hidden: the same disk it was written to fits a second copy of its size
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.verify-") as folder:
        again = Path(folder) / path.name
        rebuilt = dataset.build(
            settings,
            entities,
            again,
            feature_service=manifest.feature_service or "volatility_model",
            features=[] if manifest.feature_service else manifest.features,
            as_of=manifest.snapshot,
            full_feature_names=manifest.full_feature_names,
            progress=progress,
            stage=stage,
        )
        same = filecmp.cmp(again, path, shallow=False)  # in blocks: a set may not fit twice in memory
        report.identical = same and not report.edited
        if manifest.sha256:  # the rebuild's bytes are the ones the build wrote (whatever the file's now)
            report.as_built = rebuilt.sha256 == manifest.sha256
        if not same:
            report.differences = compare(pq.read_table(path), pq.read_table(again))
        if report.edited and (same or report.differences == [METADATA_ONLY]):
            # its rows rebuild to the values it holds now: what changed is a key (and its features
            # with it), or the file was rewritten; either way not what the build wrote
            report.differences = [
                "rebuilt from its rows it has the values the file holds now: what changed is a product "
                "or time of a row (and its features with it), or the file was written again"
            ]
    report.seconds = time.perf_counter() - started
    return report


def compare(stored: pa.Table, rebuilt: pa.Table) -> list[str]:
    """How ``rebuilt`` differs from the ``stored`` set, a line a difference: columns, rows, then values
    column by column (a NULL equals a NULL), with the first row that differs."""
    if stored.schema != rebuilt.schema:  # names, order and types (not metadata: that is below)
        names, again = stored.column_names, rebuilt.column_names
        lines = [f"column {c}: in the file, not rebuilt" for c in names if c not in again]
        lines += [f"column {c}: rebuilt, not in the file" for c in again if c not in names]
        lines += [
            f"column {c}: {stored.schema.field(c).type} in the file, {rebuilt.schema.field(c).type} rebuilt"
            for c in names
            if c in again and stored.schema.field(c).type != rebuilt.schema.field(c).type
        ]
        return lines or ["the columns' order differs"]
    if stored.num_rows != rebuilt.num_rows:
        return [f"{stored.num_rows:,} rows in the file, {rebuilt.num_rows:,} rebuilt"]
    a, b = stored.to_pandas(), rebuilt.to_pandas()
    lines = []
    for column in a.columns:
        x, y = a[column], b[column]
        unequal = ~((x == y) | (x.isna() & y.isna()))
        if not unequal.any():
            continue
        first = int(unequal.to_numpy().argmax())
        at = _row_named(a, first)
        in_file, again_value = _plain(x.iloc[first]), _plain(y.iloc[first])
        line = (
            f"{column}: {int(unequal.sum()):,} of {len(a):,} rows differ, first {at}: "
            f"{in_file!r} in the file, {again_value!r} rebuilt"
        )
        if pd.api.types.is_float_dtype(x):
            line += f" (largest difference {float((x - y).abs().max()):.3g})"
        lines.append(line)
    if len(lines) > SHOWN_DIFFERENCES:
        lines = lines[:SHOWN_DIFFERENCES] + [f"... and {len(lines) - SHOWN_DIFFERENCES} more columns"]
    # the same values in other bytes: Parquet's own metadata, say another pyarrow writing it
    return lines or [METADATA_ONLY]


def _row_named(frame: pd.DataFrame, row: int) -> str:
    """Row ``row`` of a dataset, by its entity key where it has one (`BTC-USD at 2025-...`)."""
    if {"product_id", "event_timestamp"} <= set(frame.columns):
        return f"row {row + 1:,} ({frame['product_id'].iloc[row]} at {frame['event_timestamp'].iloc[row]})"
    return f"row {row + 1:,}"


def _plain(value: object) -> object:
    """A NumPy scalar as Python's (`1.5e-05`, not `np.float64(1.5e-05)`)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
