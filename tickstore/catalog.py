"""The lake's SQLite catalog as a file: read for its snapshots, and what to say when it is missing,
emptied or damaged while the lake's data files are still there."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from tickstore import paths
from tickstore.settings import Settings

# SQLite's words for a file it can't read as a database (cut short, overwritten)
_DAMAGED = ("database disk image is malformed", "file is not a database")
# DuckDB's for a file a query reads that is not there
_NO_FILE = re.compile(r'Cannot open file "([^"]+)": No such file or directory')


def snapshot_span(catalog: Path) -> str:
    """Which snapshots the lake has, for an --as-of that named none of them ("" if unreadable)."""
    try:
        db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
        try:
            first, last, t0, t1 = db.execute(
                "SELECT min(snapshot_id), max(snapshot_id), min(snapshot_time), max(snapshot_time) "
                "FROM ducklake_snapshot"
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return ""
    if first is None:
        return ""
    return f" (the lake has snapshots {first} to {last}, taken {_utc(t0)} to {_utc(t1)})"


def _utc(stamp: object) -> str:
    """A snapshot time as the catalog keeps it ('2026-12-07 12:26:07.988757+00') to the second, in UTC."""
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def no_lake(settings: Settings) -> str:
    """Why there is no lake, and where one is when it is the source tree's (TICKSTORE_HOME defaults to
    `.tickstore` in the current folder: `tickstore` run from `sql/` or `feature_repo/` looked there)."""
    message = (
        f"no lake at {settings.lake_catalog.resolve()}: run `tickstore sink` (or `make demo`) first, "
        "or point TICKSTORE_HOME at an existing data directory"
    )
    beside = source_tree_home(settings)
    if beside is not None:
        message += (
            f" (the source tree's is {beside}: run tickstore from {paths.SOURCE_TREE}, or set TICKSTORE_HOME)"
        )
    return message


def stray_home(settings: Settings) -> Path | None:
    """The source tree's data directory, holding a lake, when ``settings.home`` is the default one
    (`.tickstore` in the current folder) and does not exist: run from the wrong folder, most likely."""
    if "home" in settings.model_fields_set or settings.home.exists():
        return None
    return source_tree_home(settings)


def source_tree_home(settings: Settings) -> Path | None:
    """The source tree's own data directory when it holds a lake and is not ``settings.home``."""
    beside = paths.SOURCE_TREE / ".tickstore"
    if (
        beside.resolve() != settings.home.resolve()
        and (beside / settings.lake_catalog.relative_to(settings.home)).exists()
    ):
        return beside
    return None


def _new_lake(settings: Settings) -> str:
    return (
        f"move {settings.lake_catalog.parent} aside and load the ticks again (`tickstore ingest replay "
        "PATH`, then `tickstore sink --until-idle`; a sink group that read the topic before reads only "
        "what is new: set another TICKSTORE_SINK_GROUP to read it from its start)"
    )


def _what_to_do(settings: Settings) -> str:
    return (
        f"put back a copy of {settings.lake_catalog.name} from a backup (with the sink and stream "
        f"stopped), or start a new lake: {_new_lake(settings)}"
    )


def orphaned(settings: Settings) -> str | None:
    """Why no new lake may be made here, when the catalog is missing or empty but the data folder
    still holds an earlier lake's Parquet files, else None.

    DuckLake makes a new, empty lake over a missing or emptied catalog: the sink did so and went on
    from its committed offsets, every earlier tick left in files no catalog names.
    """
    catalog = settings.lake_catalog
    if catalog.exists() and catalog.stat().st_size > 0:
        return None
    files = sum(1 for _ in settings.lake_data.rglob("*.parquet")) if settings.lake_data.is_dir() else 0
    if not files:
        return None
    state = "is empty (0 bytes)" if catalog.exists() else "is missing"
    return (
        f"the lake's catalog {catalog} {state}, while {settings.lake_data} holds {files:,} Parquet "
        f"file(s) of the lake it described: the catalog is what names them (a new lake here would "
        f"leave every earlier tick out); {_what_to_do(settings)}"
    )


def damaged(settings: Settings, error: str) -> str:
    """What to do about a catalog SQLite can't read, for the message of ``error`` ("" for others)."""
    if not any(words in error for words in _DAMAGED):
        return ""
    return (
        f". The catalog (the lake's tables, snapshots and the list of its Parquet files under "
        f"{settings.lake_data}) is damaged, the Parquet files themselves untouched: {_what_to_do(settings)}"
    )


def missing_data_file(settings: Settings, error: str) -> str | None:
    """What to do when ``error`` is DuckDB's for a Parquet file of the lake that is gone (deleted or
    moved by hand), else None.

    The catalog still lists it, so every query of its ticks failed with "Cannot open file ... No such
    file or directory", which tickstore took for a folder missing on the path.
    """
    found = _NO_FILE.search(error)
    if found is None:
        return None
    path = Path(found.group(1))
    if path.suffix != ".parquet" or not path.resolve().is_relative_to(settings.lake_data.resolve()):
        return None
    return (
        f"a data file of the lake is gone: {path} (deleted or moved by hand?). The lake's catalog lists "
        "it, so every query that reads its ticks fails: put it back where it was (from a backup, or "
        f"wherever it went); without it those ticks are lost to this lake, and the way on is a new "
        f"lake: {_new_lake(settings)}"
    )
