"""The local MLflow store: processes opening a new one together leave one database every later run opens;
what MLflow says went wrong reads alike from a tracking server."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable

from tests.conftest import REPO
from tickstore.mlflow_store import _sqlite_path
from tickstore.settings import Settings

OPEN = """
import training.train  # as the benches do: its imports put `once` filters in front of import-time ones
from mlflow.tracking import MlflowClient
from tickstore.mlflow_store import use_mlflow_store
from tickstore.settings import Settings
use_mlflow_store(Settings())
print(len(MlflowClient().search_registered_models()))
"""


def test_processes_opening_a_new_store_together_all_succeed(
    make_settings: Callable[..., Settings],
) -> None:
    # as `tickstore serve` starts four workers on a home that has never trained: unlocked, MLflow's
    # migrations interleaved ("duplicate column name: step") and broke the database for good
    s = make_settings()
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN],
            env={**os.environ, "TICKSTORE_HOME": str(s.home)},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0 and out.strip() == "0", err[-1500:]
        assert "noload" not in err  # MLflow's SQLAlchemy deprecation, silenced where the store opens
    database = _sqlite_path(s.mlflow_tracking_uri())
    assert database is not None
    with sqlite3.connect(database) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "registered_models" in tables and not any(t.startswith("_alembic_tmp") for t in tables)


def test_only_a_sqlite_file_is_locked() -> None:
    assert str(_sqlite_path("sqlite:////abs/mlflow.db")) == "/abs/mlflow.db"
    assert str(_sqlite_path("sqlite:///rel/mlflow.db")) == "rel/mlflow.db"  # SQLAlchemy: relative
    assert _sqlite_path("sqlite:///:memory:") is None
    assert _sqlite_path("http://mlflow.internal:5000") is None


def test_a_tracking_server_that_does_not_answer_is_named_at_once(
    make_settings: Callable[..., Settings],
) -> None:
    import time

    import pytest

    from tests.conftest import free_port
    from tickstore.mlflow_store import MlflowUnavailable, use_mlflow_store

    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    # MLflow's client retried each request for minutes first ("Retrying (Retry(total=3 ...")
    with pytest.raises(MlflowUnavailable, match=f"the MLflow tracking server {uri} does not answer"):
        use_mlflow_store(make_settings(mlflow_uri=uri))
    assert time.monotonic() - started < 5


def _files_capped(size: int) -> str:
    """Python that lets its process grow no file past ``size`` bytes (RLIMIT_FSIZE), as on a disk with
    that much room left; SIGXFSZ ignored, so a write is refused instead of the process killed. Set by
    the child itself: a ``preexec_fn`` makes Python fork the whole pytest process (ENOMEM in a full run)."""
    return (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({size}, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
    )


def test_a_new_store_cut_short_by_a_full_disk_is_made_afresh_once_there_is_room(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    database = _sqlite_path(s.mlflow_tracking_uri())
    assert database is not None

    def open_store(cap: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", cap + OPEN],
            env={**os.environ, "TICKSTORE_HOME": str(s.home)},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    # MLflow's migrations stop part way: the database would keep the tables made so far, and every
    # later opening failed on "table ... already exists", whatever room there was by then
    cut = open_store(_files_capped(256 * 1024))
    assert cut.returncode != 0 and ("disk is full" in cut.stderr or "disk I/O error" in cut.stderr), (
        cut.stderr[-1500:]
    )
    assert not database.exists(), "the half-made database was left behind"
    again = open_store()
    assert again.returncode == 0 and again.stdout.strip() == "0", again.stderr[-1500:]


def test_a_damaged_store_is_named_with_what_to_do_by_each_command(
    make_settings: Callable[..., Settings],
) -> None:
    from tests.cli.helpers import tickstore

    s = make_settings()
    database = _sqlite_path(s.mlflow_tracking_uri())
    assert database is not None
    made = subprocess.run(
        [sys.executable, "-c", OPEN], env={**os.environ, "TICKSTORE_HOME": str(s.home)}, cwd=REPO, timeout=120
    )
    assert made.returncode == 0
    database.write_bytes(database.read_bytes()[:4096])  # a copy cut short
    said = f"the MLflow store {database} is damaged (database disk image is malformed): move it aside"
    # each was a page of SQLAlchemy traceback
    models = tickstore(s, "models", check=False)
    assert models.returncode == 1 and "Traceback" not in models.stderr, models.stderr[-1500:]
    assert said in " ".join(models.stderr.split())
    status = tickstore(s, "status", check=False)
    assert "Traceback" not in status.stderr and said in " ".join(status.stdout.split()), status.stderr[-1500:]
    train = tickstore(s, "train", "--start", "2026-01-01", "--end", "2026-01-02", check=False)
    assert train.returncode == 1 and said in " ".join(train.stderr.split()), train.stderr[-1500:]


MAKE = """
import sys
from pathlib import Path
import mlflow, numpy as np
from sklearn.linear_model import LogisticRegression
from tickstore.mlflow_store import EXPERIMENT, REGISTERED_MODEL, use_mlflow_store
from tickstore.settings import Settings
home = Path(sys.argv[1])
use_mlflow_store(Settings(home=home))
# as `tickstore train` makes it (training/tracking.py): its artifacts under the home
exp = mlflow.create_experiment(EXPERIMENT, artifact_location=(home / "mlflow" / "artifacts").resolve().as_uri())
with mlflow.start_run(experiment_id=exp) as run:
    mlflow.log_text("kept", "note.txt")
    info = mlflow.sklearn.log_model(LogisticRegression().fit(np.eye(2), [0, 1]), name="model")
mlflow.register_model(info.model_uri, REGISTERED_MODEL)
print(run.info.run_id)
"""

READ = """
import sys, tempfile
from pathlib import Path
import mlflow, numpy as np
from tickstore.mlflow_store import REGISTERED_MODEL, use_mlflow_store
from tickstore.settings import Settings
use_mlflow_store(Settings(home=Path(sys.argv[1])))
print(mlflow.artifacts.load_text(f"runs:/{sys.argv[2]}/note.txt"))
for uri in (f"runs:/{sys.argv[2]}/model", f"models:/{REGISTERED_MODEL}/1"):
    with tempfile.TemporaryDirectory() as folder:  # MLflow's own temporary one is never removed
        print(mlflow.sklearn.load_model(uri, dst_path=folder).predict(np.eye(2)).tolist())
"""


def test_a_home_moved_elsewhere_serves_and_reads_its_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # MLflow records artifact locations as absolute file URIs: a moved home loaded no model
    # ("Failed to download artifacts from path 'MLmodel'") until stop 57
    made, moved = tmp_path / "made", tmp_path / "elsewhere" / "home"

    def python(script: str, *args: str) -> str:
        run = subprocess.run(
            [sys.executable, "-c", script, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        return run.stdout

    run_id = python(MAKE, str(made)).split()[-1]
    moved.parent.mkdir()
    made.rename(moved)
    assert python(READ, str(moved), run_id).split("\n")[:3] == ["kept", "[0, 1]", "[0, 1]"]
    db = sqlite3.connect(moved / "mlflow" / "mlflow.db")
    recorded = [
        r[0]
        for r in db.execute(
            "SELECT artifact_uri FROM runs UNION ALL SELECT storage_location FROM model_versions"
        )
    ]
    db.close()
    assert recorded and all(
        uri.startswith((moved / "mlflow" / "artifacts").resolve().as_uri()) for uri in recorded
    )


def test_what_mlflow_said_reads_alike_from_a_tracking_server_and_a_local_store() -> None:
    # a tracking server's "not found" came prefixed with its error code into `tickstore status` and
    # the scorer's refusals: "RESOURCE_DOES_NOT_EXIST: Registered Model with name=... not found"
    from mlflow.exceptions import MlflowException, RestException

    from tickstore.mlflow_store import reason

    served = RestException(
        {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run with id=0123abc not found"}
    )
    assert str(served).startswith("RESOURCE_DOES_NOT_EXIST: ")
    assert reason(served) == "Run with id=0123abc not found"
    assert reason(MlflowException("Run with id=0123abc not found")) == "Run with id=0123abc not found"
    assert reason(OSError("disk full")) == "disk full"
