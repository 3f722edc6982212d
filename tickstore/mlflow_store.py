"""tickstore's MLflow store: point MLflow at it, and create a local database one process at a time."""

from __future__ import annotations

import fcntl
import warnings
from pathlib import Path

from tickstore.settings import Settings


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
        return uri
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        # MLflow keeps one store per URI and process: opening both here creates or checks the
        # tables under the lock, and later calls in this process reuse those stores
        MlflowClient(uri, uri).search_registered_models(max_results=1)
    return uri


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative or absolute, as SQLAlchemy reads it), else None."""
    from sqlalchemy.engine import make_url

    if not uri.startswith("sqlite:"):
        return None
    database = make_url(uri).database
    return Path(database) if database and database != ":memory:" else None
