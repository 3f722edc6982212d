"""tickstore's MLflow store: point MLflow at it, and create a local database one process at a time."""

from __future__ import annotations

import fcntl
import sqlite3
import warnings
from pathlib import Path
from urllib.parse import urlsplit

from tickstore.errors import TickstoreError
from tickstore.net import unreachable
from tickstore.settings import Settings
from tickstore.text import without_passwords

# Where `tickstore train` logs its runs and registers its champion (the scorer reads both)
EXPERIMENT = "tickstore-volatility"
REGISTERED_MODEL = "tickstore-volatility"


def use_mlflow_store(settings: Settings) -> str:
    """Point MLflow's tracking and registry at ``settings``' store, ready to use; returns its URI.

    MLflow creates and upgrades a SQLite database in the first process that opens it, and takes no
    lock: four scorer workers starting together on a new home interleaved their migrations and left
    a database that nothing could open again ("table _alembic_tmp_latest_metrics already exists").
    Here the first opening in each process waits for a file lock beside the database.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    # MLflow's SQLAlchemy store trips this whenever it is created; nothing a user can act on. Added here
    # at each call, not once at import: a filter goes in front of the earlier ones, and a library
    # imported later (training's) puts `once` for every DeprecationWarning in front of an import-time one.
    warnings.filterwarnings("ignore", message="The ``noload`` loader strategy", category=DeprecationWarning)
    uri = settings.mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    database = _sqlite_path(uri)
    if database is None:  # a tracking server migrates its own database
        check_server(uri)
        return uri
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        new = not database.exists()
        try:
            # MLflow keeps one store per URI and process: opening both here creates or checks the
            # tables under the lock, and later calls in this process reuse those stores
            MlflowClient(uri, uri).search_registered_models(max_results=1)
        except Exception as exc:
            # MLflow's migrations are not one transaction: a new database cut short (by a full disk)
            # kept half its tables, and every later run failed on "table mcp_servers already exists"
            # even once there was room. A database made just now holds nothing yet: start it afresh.
            if new:
                for leftover in (
                    database,
                    *(database.with_name(database.name + x) for x in ("-wal", "-shm", "-journal")),
                ):
                    leftover.unlink(missing_ok=True)
            elif (damage := _damaged(exc)) is not None:
                # a copy cut short, a disk fault: each command ended in a page of SQLAlchemy traceback
                raise MlflowStoreDamaged(
                    f"the MLflow store {database} is damaged ({damage}): move it aside and `tickstore "
                    "train` starts a new one (the runs and models it held go with it), or point "
                    "TICKSTORE_MLFLOW_URI at another store"
                ) from exc
            raise
        if not settings.mlflow_uri:  # the home's own store: where its artifacts are is ours to say
            _follow_home(settings, database)
    return uri


# Where MLflow records the files of a run, a logged model and a registered version
_ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def _follow_home(settings: Settings, database: Path) -> None:
    """Respell the artifact paths the home's MLflow store recorded where the home was made, when it
    has been moved or copied since.

    MLflow keeps each artifact's location as an absolute file URI: a home moved elsewhere served no
    model ("Failed to download artifacts from path 'MLmodel'"), and a copy trained into the original's
    folder. tickstore made the experiment with its artifacts under the home, so a recorded root that
    is another `.../mlflow/artifacts` is this one's, moved. Called under the store's lock.
    """
    here = (settings.home / "mlflow" / "artifacts").resolve().as_uri()
    db = sqlite3.connect(database, timeout=30)
    try:
        row = db.execute("SELECT artifact_location FROM experiments WHERE name = ?", (EXPERIMENT,)).fetchone()
        if (
            row is None
            or row[0] == here
            or not (row[0].startswith("file:///") and row[0].endswith("/mlflow/artifacts"))
        ):
            return
        was = row[0]
        with db:  # one transaction: every path respelled, or none
            for table, column in _ARTIFACT_COLUMNS:
                if column not in {c[1] for c in db.execute(f"PRAGMA table_info({table})")}:
                    continue  # an MLflow without it
                # names from the tuple above, values bound; the prefix is the old root, then a '/' or the end
                db.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608
                    f"WHERE substr({column}, 1, ?) = ? AND (length({column}) = ? OR substr({column}, ?, 1) = '/')",
                    (here, len(was) + 1, len(was), was, len(was), len(was) + 1),
                )
    finally:
        db.close()


class MlflowStoreDamaged(TickstoreError):
    """The local MLflow database is no SQLite database SQLite can read (cut short, overwritten)."""


def _damaged(exc: BaseException) -> str | None:
    """SQLite's words for a database file it cannot read at all, from ``exc`` or the SQLite error a
    SQLAlchemy error wraps; None for any other failure (locked, full disk: those are said elsewhere)."""
    for candidate in (exc, getattr(exc, "orig", None)):
        if isinstance(candidate, sqlite3.DatabaseError) and not isinstance(
            candidate, sqlite3.OperationalError
        ):
            return str(candidate)
    return None


class MlflowUnavailable(TickstoreError):
    """The MLflow tracking server of TICKSTORE_MLFLOW_URI does not answer."""


def reason(exc: BaseException) -> str:
    """What MLflow said went wrong, worded alike from a tracking server and from a local store: a
    server's answer comes prefixed with its error code ("RESOURCE_DOES_NOT_EXIST: Run ... not found")."""
    body = getattr(exc, "json", None)  # mlflow.exceptions.RestException: the server's JSON
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return str(exc)


def check_server(uri: str) -> None:
    """Fail at once when an http(s) tracking server refuses connections: MLflow's client retries each
    request for minutes ("Retrying (Retry(total=3 ...") before it gives up."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    why = unreachable([(parts.hostname, port)], timeout=3.0)
    if why:
        raise MlflowUnavailable(
            f"the MLflow tracking server {without_passwords(uri)} does not answer ({why}): start it, or unset "
            "TICKSTORE_MLFLOW_URI to use the local store under TICKSTORE_HOME/mlflow"
        )


def store_exists(settings: Settings) -> bool:
    """Whether the MLflow store is there to read (a server always counts: it is asked instead)."""
    database = store_file(settings)
    return database is None or database.exists()


def store_file(settings: Settings) -> Path | None:
    """The MLflow store's database file (the home's own, or TICKSTORE_MLFLOW_URI's sqlite:///); None
    for a tracking server."""
    return _sqlite_path(settings.mlflow_tracking_uri())


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative or absolute, as SQLAlchemy reads it), else None."""
    from sqlalchemy.engine import make_url

    if not uri.startswith("sqlite:"):
        return None
    database = make_url(uri).database
    return Path(database) if database and database != ":memory:" else None
