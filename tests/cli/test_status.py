"""`tickstore status`: every part at a glance, against a real broker, lake, online store and registry."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from serving import create_app
from tests.cli.helpers import env_for, serving, tickstore
from tests.conftest import REPO, free_port
from tickstore.settings import Settings
from tickstore.text import size_of


def test_a_fresh_home_names_what_is_missing_and_what_to_do(make_settings: Callable[..., Settings]) -> None:
    s = make_settings(broker_port=free_port(), serve_port=free_port())
    run = tickstore(s, "status", check=False)
    out = " ".join(run.stdout.split())  # the report is the answer: stdout, for `| grep` and `> file`
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "down: start it with `tickstore broker start`" in out
    assert "lake: missing: no lake at" in out and "run `tickstore sink`" in out
    assert "online store (SQLite): missing:" in out and "`tickstore feast apply`" in out
    assert "missing: no MLflow store yet (`tickstore train` creates it)" in out
    assert f"scorer http://127.0.0.1:{s.serve_port}: not running (`tickstore serve`" in out
    assert not (s.home / "mlflow").exists()  # asking made no MLflow store
    assert not (s.home / "feast").exists()  # nor a feature registry and an online store


def test_an_online_store_with_no_file_is_said_empty_and_not_made(
    make_settings: Callable[..., Settings],
) -> None:
    # a home whose stream wrote to Redis, asked without TICKSTORE_ONLINE_STORE=redis: status made an empty
    # SQLite store, which then read as "ok" with no features, and README says it creates nothing
    from tickstore_feast.config import online_store_file
    from tickstore_feast.repo import feature_store

    s = make_settings(broker_port=free_port(), serve_port=free_port())
    feature_store(s)  # the registry, as `tickstore feast apply` leaves it
    file = online_store_file(s)
    assert file is not None and file.exists()
    for made in file.parent.glob(file.name + "*"):
        made.unlink()
    out = " ".join(tickstore(s, "status", check=False).stdout.split())
    assert (
        f"online store (SQLite): ok, no features online yet: `tickstore stream` writes them to {file}" in out
    )
    assert "TICKSTORE_ONLINE_STORE=redis" in out
    assert not list(file.parent.glob(file.name + "*"))  # asking made no file


def test_each_part_is_printed_as_soon_as_it_is_known(make_settings: Callable[..., Settings]) -> None:
    # the broker's line must not wait for the online store's part, which first imports Feast (~1-2 s)
    s = make_settings(broker_port=free_port(), serve_port=free_port())
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "status"],
        env=env_for(s),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    arrived = [(time.monotonic(), line) for line in proc.stdout]
    proc.wait(timeout=60)
    assert "broker" in arrived[0][1] and "scorer" in arrived[-1][1], arrived
    online = next(t for t, line in arrived if line.startswith("online store"))
    assert online - arrived[0][0] > 0.3, arrived  # printed together at the end before stop 52


def test_a_tick_time_python_cannot_hold_is_said_as_it_is(make_settings: Callable[..., Settings]) -> None:
    from tickstore import lake

    s = make_settings(broker_port=free_port(), serve_port=free_port())
    con = lake.connect(s, create=True)  # the sink rejects such a time; `tickstore sql --write` can write it
    con.execute(
        "INSERT INTO ticks (product_id, event_time, price) VALUES ('BTC-USD', '99999-11-12 07:20:11+00', 1)"
    )
    con.close()
    run = tickstore(s, "status", check=False)
    assert "Traceback" not in run.stderr, run.stderr
    assert "BTC-USD: 1 ticks, newest 99999-11-12 07:20:11+00 (a time Python can't hold" in run.stdout


def test_a_tick_time_ahead_of_the_clock_is_said_so(make_settings: Callable[..., Settings]) -> None:
    """A feed whose clock is ahead of this one (or a simulated run past now) read "-20917 s ago"."""
    from tickstore import lake

    s = make_settings(broker_port=free_port(), serve_port=free_port())
    con = lake.connect(s, create=True)
    con.execute(
        "INSERT INTO ticks (product_id, event_time, price) VALUES ('BTC-USD', now() + INTERVAL 3 HOUR, 1)"
    )
    con.close()
    run = tickstore(s, "status", check=False)
    assert re.search(r"BTC-USD: 1 ticks, newest .* UTC \(3 h ahead of this machine's clock\)", run.stdout), (
        run.stdout
    )


def test_the_disk_the_lake_takes_and_what_earlier_snapshots_keep(
    make_settings: Callable[..., Settings],
) -> None:
    from ingest.sink.compaction import compact
    from tickstore import lake

    s = make_settings(broker_port=free_port(), serve_port=free_port())
    con = lake.connect(s, create=True)
    for batch in range(2):  # two files (DuckLake keeps batches of up to 10 rows in its catalog)
        con.execute(
            "INSERT INTO ticks (product_id, event_time, price) SELECT 'BTC-USD', "
            "TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(range + $b * 100), 1 FROM range(100)",
            {"b": batch},
        )
    files = sorted(f.stat().st_size for f in s.lake_data.rglob("*.parquet"))
    out = " ".join(tickstore(s, "status", check=False).stdout.split())
    assert f"data files: {size_of(sum(files))} on disk online store" in out  # all of it read
    compact(con, retention_days=7)  # one merged file; the two stay for snapshots before it
    con.close()
    merged = sum(f.stat().st_size for f in s.lake_data.rglob("*.parquet")) - sum(files)
    out = " ".join(tickstore(s, "status", check=False).stdout.split())
    assert (
        f"data files: {size_of(sum(files) + merged)} on disk, {size_of(merged)} read by the newest "
        "snapshot; the rest keep earlier snapshots for `--as-of` (7 days" in out
    ), out


def test_rows_waiting_in_the_catalog_for_a_data_file_are_counted(
    make_settings: Callable[..., Settings],
) -> None:
    from ingest.sink.compaction import compact, inline_small_writes
    from tickstore import lake

    s = make_settings(broker_port=free_port(), serve_port=free_port())
    con = lake.connect(s, create=True)
    inline_small_writes(con, 100)  # as the sink sets it
    for batch in range(3):  # a live sink's small batches: kept in the catalog, no data file
        con.execute(
            "INSERT INTO ticks (product_id, event_time, price) SELECT 'BTC-USD', "
            "TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(range + $b * 20), 1 FROM range(20)",
            {"b": batch},
        )
    con.execute("DELETE FROM ticks WHERE event_time = TIMESTAMPTZ '2026-01-01 00:00:05+00'")
    con.execute("INSERT INTO ticks_rejected (reason) VALUES ('a reason')")
    assert not list(s.lake_data.rglob("*.parquet"))
    out = " ".join(tickstore(s, "status", check=False).stdout.split())
    assert "BTC-USD: 59 ticks" in out, out
    assert "60 rows in the catalog, not yet in a file: the sink's next compaction writes them out" in out, out
    compact(con, retention_days=7)  # written out: nothing waits
    con.close()
    out = " ".join(tickstore(s, "status", check=False).stdout.split())
    assert "BTC-USD: 59 ticks" in out and "in the catalog" not in out, out


def test_a_lake_whose_tables_were_dropped_says_where_the_ticks_still_are(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from tickstore import lake

    s = make_settings(broker_port=free_port(), serve_port=free_port())
    con = lake.connect(s, create=True)
    con.execute(
        "INSERT INTO ticks (product_id, event_time, price) VALUES ('BTC-USD', '2025-12-06 07:00:00+00', 1)"
    )
    # as `tickstore sql --write` did before stop 55 (it refuses now), or DuckDB's own CLI on the lake
    con.execute("DROP TABLE ticks_rejected")
    con.close()
    run = tickstore(s, "status", check=False)
    out = " ".join(run.stdout.split())
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert (
        "missing: the lake without its ticks_rejected table: put it back as it was before snapshot 3" in out
    )
    con = lake.connect(s, create=False)  # create=True would make the tables anew
    con.execute("DROP TABLE ticks")  # status said it with a CatalogException's traceback
    # a table of the user's own, made and dropped after, is no change to ticks
    con.execute("CREATE TABLE mine AS SELECT 1 AS x")
    con.execute("DROP TABLE mine")
    con.close()
    run = tickstore(s, "status", check=False)
    out = " ".join(run.stdout.split())
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "missing: the lake without its ticks table: put it back" in out, out
    assert "put it back as it was before snapshot 4, which changed it" in out, out
    run = tickstore(s, "sql", "SELECT count(*) FROM ticks", check=False)
    assert "The lake has no ticks table: put it back as it was before snapshot 4" in " ".join(
        run.stderr.split()
    )
    # "snapshot 4 is from before the lake's ticks table was made", as if it never had been
    out_file = tmp_path / "x.parquet"
    times = ("--start", "2025-12-06T06:00", "--end", "2025-12-06T08:00")
    run = tickstore(s, "dataset", "build", "--every", "60", *times, "-o", str(out_file), check=False)
    assert "the lake has no ticks table at snapshot 6 (dropped by hand)" in " ".join(run.stderr.split())
    # the command status gives puts it back, as it was at snapshot 3 (the user's transaction passes
    # tickstore sql's check at its COMMIT: the tables are as tickstore makes them again)
    command = out.split('tickstore sql --write "')[1].split('"')[0]
    assert command.startswith("BEGIN; CREATE TABLE ticks_back AS FROM ticks AT (VERSION => 3);"), command
    tickstore(s, "sql", "--write", command)
    said = tickstore(s, "sql", "--format", "csv", "SELECT count(*) FROM ticks").stdout
    assert said.split() == ["count_star()", "1"]


def test_a_lake_whose_ticks_columns_were_changed_says_changed_not_missing(
    make_settings: Callable[..., Settings],
) -> None:
    from tickstore import lake

    s = make_settings(broker_port=free_port(), serve_port=free_port())
    con = lake.connect(s, create=True)
    con.execute("ALTER TABLE ticks RENAME COLUMN price TO px")  # as DuckDB's own CLI on the lake would
    con.close()
    out = " ".join(tickstore(s, "status", check=False).stdout.split())
    assert (
        "changed: the lake's ticks table other than tickstore makes it (columns missing price; added px)"
        in out
    )
    assert "missing: the lake's ticks" not in out, out


def test_something_else_on_the_scorers_port_is_named(make_settings: Callable[..., Settings]) -> None:
    s = make_settings(broker_port=free_port(), serve_port=free_port())
    with serving(HTTPServer(("127.0.0.1", s.serve_port), SimpleHTTPRequestHandler)):
        out = " ".join(tickstore(s, "status", check=False).stdout.split())
    assert "something else answers there (HTTP 404), not `tickstore serve`" in out


@pytest.mark.kafka
def test_every_part_up_reads_ok_with_counts_and_ages(
    make_settings: Callable[..., Settings], broker_port: int
) -> None:
    from ingest import kafka
    from tests.serving.conftest import register_model, write_online
    from tests.tickstore_feast.conftest import load, tick_rows
    from tickstore_feast import DuckDBSource
    from tickstore_feast.repo import definitions, feature_store

    s = make_settings(broker_port=broker_port, serve_port=free_port())
    kafka.ensure_topics(s)
    load(s, tick_rows([("BTC-USD", t, 100.0) for t in range(5)] + [("ETH-USD", 0.0, 10.0)]))
    version = register_model(s, seed=1, threshold=0.5)
    write_online(s, "BTC-USD")  # after the model: registering can take longer than the 10 s view's TTL
    # the scorer, a real Flask app of `serving.create_app` on a real socket, serving the champion
    app = create_app(s, watch_model=False)
    with serving(make_server("127.0.0.1", s.serve_port, app, threaded=True)):
        run = tickstore(s, "status", check=False)
    out = " ".join(run.stdout.split())
    assert run.returncode == 0, out
    assert (
        f"scorer http://127.0.0.1:{s.serve_port}: ok, serving models:/tickstore-volatility/{version} (logreg, 60 s horizon)"
    ) in out
    assert f"embedded broker at 127.0.0.1:{broker_port}: up" in out and f"{s.topic_raw}: 3 partitions" in out
    assert "ok, 6 ticks of 2 products at snapshot" in out and "0 rejected" in out
    assert "BTC-USD: 5 ticks, newest 2026-01-01 00:00:04 UTC" in out
    # seconds old; only the 10 s view may have expired by the time a loaded machine has started status
    assert re.search(r"BTC-USD: features as of \d+ s ago(, expired: ticks_10s)? ETH-USD", out), out
    assert "ETH-USD: no features online: `tickstore stream` writes them" in out
    assert f"model models:/tickstore-volatility@champion: ok, version {version} (logreg, 60 s horizon)" in out
    # the 60 s view's SQL changed after training: the scorer refuses the model, and status says so first
    view = definitions().ticks_60s
    view.batch_source = DuckDBSource(
        name="ticks_60s", query=view.batch_source.query.replace("60000000", "61000000"), lookback=view.ttl
    )
    feature_store(s, apply=False).apply([view])
    deadline = time.monotonic() + 30  # the scorer rebuilds its reader beside the requests
    while app.test_client().get("/readyz").status_code == 200:
        assert time.monotonic() < deadline, "the scorer never read the changed registry"
        time.sleep(0.2)
    with serving(make_server("127.0.0.1", s.serve_port, app, threaded=True)):
        run = tickstore(s, "status", check=False)
    out = " ".join(run.stdout.split())
    assert run.returncode == 1, out
    assert f"@champion: refused by the scorer, version {version}" in out
    # ... and the running scorer, which reads the registry as it is now, is not ready
    assert f"scorer http://127.0.0.1:{s.serve_port}: not ready, serving models:/tickstore-volatility/" in out
    assert "trained on features that other SQL computed for ticks_60s" in out


def test_a_model_run_deleted_in_mlflow_is_said_before_and_while_a_scorer_serves_it(
    make_settings: Callable[..., Settings],
) -> None:
    # a scorer started on a deleted run served it, and status said nothing: its model goes with
    # `mlflow gc`, and `tickstore models` no longer lists it
    from mlflow import MlflowClient

    from tests.serving.conftest import MODEL, register_model

    s = make_settings(broker_port=free_port(), serve_port=free_port())
    version = register_model(s, seed=1, threshold=0.5)  # MLflow pointed at the test's store first
    run_id = MlflowClient().get_model_version(MODEL, version).run_id
    fixed = s.model_copy(update={"serve_model_uri": f"runs:/{run_id}/model"})
    app = create_app(fixed, watch_model=False)  # loaded while the run was there
    MlflowClient().delete_run(run_id)
    restore = f"mlflow runs restore --run-id {run_id}"
    with serving(make_server("127.0.0.1", s.serve_port, app, threaded=True)):
        run = tickstore(
            s, "status", check=False, env={**env_for(s), "TICKSTORE_SERVE_MODEL_URI": fixed.serve_model_uri}
        )
    out = " ".join(run.stdout.split())
    assert (
        f"model runs:/{run_id}/model: missing: run {run_id} was deleted in MLflow" in out and restore in out
    )
    assert (
        f"scorer http://127.0.0.1:{s.serve_port}: ok, serving runs:/{run_id}/model (logreg, 60 s horizon) run {run_id} was deleted in MLflow"
        in out
    )
    assert out.endswith(f"{restore}`, or start the scorer on another model"), out
    assert run.returncode == 1, out  # no model to start a scorer on
    served = tickstore(s, "serve", "--model", f"runs:/{run_id}/model", check=False)
    said = " ".join(served.stderr.split())
    assert served.returncode == 1 and said.startswith(
        f"Error: cannot serve runs:/{run_id}/model: run {run_id} was deleted in MLflow"
    ), said
