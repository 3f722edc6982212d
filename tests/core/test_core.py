"""Core: settings from TICKSTORE_* variables, and the lake connection (tables, time travel, errors)."""

from __future__ import annotations

import errno
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO, asof_plan
from tickstore import lake, net
from tickstore.errors import storage_trouble
from tickstore.settings import Settings, unknown_variables
from tickstore.values import parse_cpus


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TICKSTORE_HOME", str(tmp_path))
    monkeypatch.setenv("TICKSTORE_KAFKA_BOOTSTRAP", "kafka1:9092,kafka2:9092")
    s = Settings()
    assert s.home == tmp_path and s.lake_catalog == tmp_path / "lake" / "catalog.sqlite"
    assert not s.embedded_broker and s.bootstrap == "kafka1:9092,kafka2:9092"
    assert Settings(kafka_bootstrap=None, broker_port=1234).bootstrap == "127.0.0.1:1234"


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `(TICKSTORE_\w+)` \| ([^|]*?) \|", (REPO / "README.md").read_text(), re.M))
    documented = {}
    for name, field in Settings.model_fields.items():
        default = field.default
        if default is None:
            documented[name] = "unset"
        elif default == "":
            documented[name] = "empty (any)"
        else:
            text = str(int(default)) if isinstance(default, float) and default.is_integer() else str(default)
            documented[name] = f"`{text}`"
    assert {f"TICKSTORE_{name.upper()}": cell for name, cell in documented.items()} == rows


def test_an_empty_home_is_the_default_not_the_current_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKSTORE_HOME", "")
    assert Settings().home == Path(".tickstore")


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Settings(hom="typo")  # type: ignore[call-arg]


def test_a_variable_naming_no_setting_is_named_with_the_nearest_setting() -> None:
    # pydantic ignores them: a misspelt bootstrap left the embedded broker in use without a word
    environ = {
        "TICKSTORE_KAFKA_BOOTSTRAP_SERVERS": "kafka1:9092",
        "tickstore_mlflow_tracking_uri": "http://mlflow:5000",
        "TICKSTORE_FOO": "1",
        "TICKSTORE_HOME": "/data",  # settings, in any case, and others' variables are not named
        "tickstore_serve_port": "8001",
        "_TICKSTORE_COMPLETE": "bash_source",
        "KAFKA_BOOTSTRAP_SERVERS": "x",
    }
    assert unknown_variables(environ) == [
        "TICKSTORE_FOO is not a tickstore setting and is ignored (the README's Settings lists them)",
        "TICKSTORE_KAFKA_BOOTSTRAP_SERVERS is not a tickstore setting and is ignored: did you mean "
        "TICKSTORE_KAFKA_BOOTSTRAP?",
        "tickstore_mlflow_tracking_uri is not a tickstore setting and is ignored: did you mean "
        "TICKSTORE_MLFLOW_URI?",
    ]
    assert unknown_variables({f"TICKSTORE_{name.upper()}": "" for name in Settings.model_fields}) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"serve_workers": 0},
        {"sink_batch_rows": -1},
        {"serve_port": 70000},
        {"log_every_s": 0},
        {"sink_idle_ms": -1},
        # each stopped a long-running process where it was used: the sink at its first compaction
        # (an OverflowError), the scorer's reload thread (past threading's TIMEOUT_MAX)
        {"snapshot_retention_days": float("inf")},
        {"serve_reload_s": 1e10},
        # librdkafka refused them, naming its own property and TICKSTORE_KAFKA_CONFIG
        {"rebalance_timeout_ms": 86_400_001},
        {"max_message_bytes": 2_000_000_000},
        # a batch processed without a poll: one of a million outlasts max.poll.interval.ms
        {"stream_batch_rows": 100_001},
        {"coinbase_advanced_url": "https://advanced-trade-ws.coinbase.com"},  # retried for ever
        {"mlflow_uri": "./mlruns"},  # MLflow 3's refusal of a file store was a traceback
        {"topic_raw": ""},  # librdkafka's "Invalid argument" traceback from the sink
        {"topic_dlq": "dead letters"},  # the embedded broker took it; a real Kafka refuses it
        {"sink_group": " "},
    ],
)
def test_settings_that_mean_nothing_are_refused(bad: dict[str, object]) -> None:
    # TICKSTORE_SERVE_WORKERS=0 started a gunicorn master without workers
    with pytest.raises(ValueError, match=next(iter(bad))):
        Settings(**bad)  # type: ignore[arg-type]


def test_the_scorer_gets_a_worker_per_pinned_cpu_else_four(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TICKSTORE_SERVE_WORKERS", "TICKSTORE_SERVE_CPUS"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().scorer_workers() == 4
    assert Settings(serve_cpus="0").scorer_workers() == 1
    assert Settings(serve_cpus="0,2-3").scorer_workers() == 3
    assert Settings(serve_cpus="0", serve_workers=2).scorer_workers() == 2
    monkeypatch.setenv("TICKSTORE_SERVE_WORKERS", "")  # set but empty: the default, as for the CPU lists
    assert Settings(serve_cpus="1").scorer_workers() == 1
    monkeypatch.setenv("TICKSTORE_SERVE_WORKERS", "3")
    assert Settings(serve_cpus="1").scorer_workers() == 3


@pytest.mark.parametrize(
    ("given", "feast_form"),
    [
        ("127.0.0.1:6379", "127.0.0.1:6379"),
        ("h:1,db=2", "h:1,db=2"),
        # the URL most tools print reached redis-py as host "redis", port "//127.0.0.1": a traceback
        ("redis://127.0.0.1:6399/0", "127.0.0.1:6399,db=0"),
        ("redis://cache", "cache:6379"),
        ("rediss://:secret@cache:6380/2", "cache:6380,password=secret,ssl=true,db=2"),
    ],
)
def test_redis_urls_are_taken_as_feast_reads_them(given: str, feast_form: str) -> None:
    assert Settings(redis_url=given).redis_url == feast_form


@pytest.mark.parametrize("given", ["localhost", "h:x", "redis://:6379"])
def test_a_redis_address_without_host_and_port_is_refused(given: str) -> None:
    with pytest.raises(ValueError, match="redis_url"):
        Settings(redis_url=given)


@pytest.mark.parametrize(
    ("given", "servers"),
    [
        ("kafka-1:9092", [("kafka-1", 9092)]),
        ("localhost", [("localhost", 9092)]),  # librdkafka's default port
        ("SASL_SSL://b-1:9093, b-2", [("b-1", 9093), ("b-2", 9092)]),
        ("[::1]:19092,[fe80::1]", [("::1", 19092), ("fe80::1", 9092)]),
    ],
)
def test_kafka_bootstrap_servers_read_as_librdkafka_reads_them(
    given: str, servers: list[tuple[str, int]]
) -> None:
    assert net.kafka_servers(given) == servers
    assert Settings(kafka_bootstrap=given).bootstrap == given


@pytest.mark.parametrize("given", ["::::", "kafka:abc", "h:70000", "h:0", "a:1,,b:2"])
def test_a_mistyped_kafka_bootstrap_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    # `tickstore status` and `broker status` died of "::::" with a traceback (int(''))
    monkeypatch.setenv("TICKSTORE_KAFKA_BOOTSTRAP", given)
    with pytest.raises(ValueError, match=r"kafka_bootstrap[\s\S]*is not HOST\[:PORT\]"):
        Settings()


@pytest.mark.parametrize(
    ("spec", "cpus"),
    [("", None), ("  ", None), ("1", {1}), ("0,2-3", {0, 2, 3}), (" 0 , 3-3 ", {0, 3}), ("1-2,2", {1, 2})],
)
def test_cpu_lists_read_like_taskset(spec: str, cpus: set[int] | None) -> None:
    assert parse_cpus(spec) == (None if cpus is None else frozenset(cpus))


@pytest.mark.parametrize("spec", ["a", "1;2", "3-1", "-1", "0,", "1-2-3", "0-", "\u0663"])
def test_a_mistyped_cpu_list_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    with pytest.raises(ValueError, match="CPU"):
        parse_cpus(spec)
    monkeypatch.setenv("TICKSTORE_STREAM_CPUS", spec)
    with pytest.raises(ValueError, match="stream_cpus"):
        Settings()


def test_lake_time_travel_is_read_only_and_sees_the_past(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    con = lake.connect(s)
    con.execute("INSERT INTO ticks (product_id, event_time) VALUES ('A', now())")
    before = lake.current_snapshot(con)
    con.execute("INSERT INTO ticks (product_id, event_time) VALUES ('B', now())")
    old = lake.connect(s, snapshot=before)
    assert old.execute("SELECT product_id FROM ticks").fetchall() == [("A",)]
    with pytest.raises(duckdb.Error):
        old.execute("INSERT INTO ticks (product_id) VALUES ('C')")
    assert lake.connect(s, create=False).execute("SELECT count(*) FROM ticks").fetchone() == (2,)


def test_the_span_of_ticks_an_empty_range_error_names(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    con = lake.connect(s)
    assert lake.tick_span(s).startswith("the lake holds no ticks yet: `tickstore ingest replay")
    # times of another zone are named in UTC, as every --start and --end takes them
    con.execute("INSERT INTO ticks (product_id, event_time) VALUES ('A', '2026-01-01 09:30:00+09:00')")
    first = lake.current_snapshot(con)
    con.execute("INSERT INTO ticks (product_id, event_time) VALUES ('B', '2026-01-02 00:00:00.5+00')")
    span = "the lake's ticks run from 2026-01-01 00:30:00 to {} UTC"
    assert lake.tick_span(s) == span.format("2026-01-02 00:00:00")
    assert lake.tick_span(s, first) == span.format("2026-01-01 00:30:00")  # as the snapshot had them


def test_time_travel_to_no_snapshot_names_the_snapshots_there_are(
    make_settings: Callable[..., Settings],
) -> None:
    from datetime import UTC, datetime

    s = make_settings()
    last = lake.current_snapshot(lake.connect(s))
    # times to the second, in UTC: the catalog's text ('2026-12-07 12:26:07.988757+00') was printed as kept
    taken = r"taken 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC to 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC\)"
    with pytest.raises(lake.LakeError, match=rf"version 999 \(the lake has snapshots 0 to {last}, {taken}"):
        lake.connect(s, snapshot=999)
    with pytest.raises(lake.LakeError, match=rf"the lake has snapshots 0 to {last}"):
        lake.snapshot_at(s, datetime(2001, 1, 1, tzinfo=UTC))


def test_a_home_moved_elsewhere_reads_and_writes_its_lake(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    import shutil

    s = make_settings()
    con = lake.connect(s)
    con.execute(
        "INSERT INTO ticks (product_id, event_time) SELECT 'A', now() FROM range(50000)"
    )  # a Parquet file
    con.close()
    moved = Settings(home=tmp_path / "moved")
    shutil.copytree(s.home / "lake", moved.lake_catalog.parent)  # the catalog names the old data path
    shutil.rmtree(s.home / "lake")
    con = lake.connect(moved)
    con.execute("INSERT INTO ticks (product_id, event_time) SELECT 'B', now() FROM range(50000)")
    assert con.execute("SELECT count(*) FROM ticks").fetchone() == (100_000,)
    assert len(list(moved.lake_data.rglob("*.parquet"))) == 2 and not (s.home / "lake").exists()


def test_missing_lake_is_a_clear_error(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(lake.LakeError, match="run `tickstore sink`"):
        lake.connect(make_settings(), create=False)


def test_every_lake_connection_plans_asof_joins_without_the_quadratic_loop(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    assert asof_plan(duckdb.connect()) == "nested loop"  # DuckDB's default, which the views must avoid
    con = lake.connect(s)
    assert asof_plan(con) == "asof"
    assert asof_plan(lake.connect(s, snapshot=lake.current_snapshot(con))) == "asof"


def test_duckdb_draws_no_progress_bar_on_stdout_in_a_tickstore_session(tmp_path: Path) -> None:
    # DuckDB draws one on stdout once a statement runs 2 s, piped or not: CI found it in the middle of
    # a script's printed count. Its default is on in a plain Python process (off under pytest), so a
    # process of its own reads the sessions' setting; `progress_bar_time = 0` shows the bar at once.
    code = (
        "import duckdb\nfrom tickstore import lake\nfrom tickstore.settings import Settings\n"
        "query = 'SELECT count(*) FROM range(30000000) t(i) WHERE i % 7 = 3'\n"
        "plain, tuned = duckdb.connect(), duckdb.connect()\n"
        "lake.tune(tuned)\n"  # the stages' in-memory sessions (archive, entities, simulate)
        f"cursor = lake.connect(Settings(home={str(tmp_path / 'home')!r}))\n"
        "(instance,) = lake._INSTANCES.values()\n"  # the session that attached the lake: seconds when it waits
        "for con in (plain, tuned, cursor, instance):\n"
        "    print(con.execute(\"SELECT current_setting('enable_progress_bar')\").fetchone()[0])\n"
        "plain.execute('SET progress_bar_time = 0')\n"
        "print(plain.execute(query).fetchone()[0])\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-1000:]
    lines = run.stdout.split("\n")
    assert lines[:4] == ["True", "False", "False", "False"], lines  # DuckDB's default, then tickstore's
    assert "100%" in run.stdout and lines[-2:] == ["4285714", ""]  # what the default draws, in the output


def _block_pool(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("SELECT current_setting('block_allocator_memory')").fetchone()[0])  # type: ignore[index]


def test_lake_connections_reuse_memory_blocks_unless_turned_off(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    def pool(**size: str) -> str:  # each on a lake of its own: a process opens one DuckDB per lake
        return _block_pool(lake.connect(make_settings(home=tmp_path / str(size), **size)))

    plain = duckdb.connect()
    assert _block_pool(plain) == "0 bytes"  # DuckDB's default: freed blocks go back to the kernel
    memory_limit = plain.execute("SELECT current_setting('memory_limit')").fetchone()[0]  # type: ignore[index]
    assert pool() == memory_limit  # the default, 100%: as much as DuckDB's memory limit
    assert pool(duckdb_block_pool="0") == "0 bytes"
    assert pool(duckdb_block_pool="1GB") == "953.6 MiB"


@pytest.mark.parametrize("size", ["lots", "1GB; SELECT 1", "-1GB", "5 parsecs"])
def test_a_block_pool_that_is_not_a_size_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, size: str
) -> None:
    monkeypatch.setenv("TICKSTORE_DUCKDB_BLOCK_POOL", size)
    with pytest.raises(ValueError, match="duckdb_block_pool"):
        Settings()


def test_a_block_pool_larger_than_duckdb_allows_says_what_to_do(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(lake.LakeError, match="TICKSTORE_DUCKDB_BLOCK_POOL=.*at most 100%"):
        lake.connect(make_settings(duckdb_block_pool="100000TB"))


def test_processes_opening_a_new_lake_together_all_get_its_tables(tmp_path: Path) -> None:
    # two sinks (or a sink and `feast apply`) starting on a new home: one's CREATE TABLE commit found
    # the catalog locked, and the ROLLBACK after it ("no transaction is active") hid that error from
    # the retry, so the process died. Eight at once failed 2-4 of 8 that way.
    code = (
        "from tickstore import lake\nfrom tickstore.settings import Settings\n"
        f"con = lake.connect(Settings(home={str(tmp_path / 'home')!r}))\n"
        "print(con.execute('SELECT count(*) FROM ticks_rejected').fetchone()[0])\n"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0 and out.strip() == "0", err[-1000:]


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/x"), "the disk is full"),
        (PermissionError(errno.EACCES, "Permission denied", "/x"), "this user may not write there"),
        (OSError(errno.ENOTDIR, "Not a directory", "/x"), "not a directory"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/no/such/folder/x"), "missing"),
        # the folder is there (it was said missing): /proc takes no new files
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/proc/x"), "takes no new files"),
        (
            duckdb.IOException(
                'IO Error: Cannot open file "/lake/data/x.parquet": No such file or directory'
            ),
            "missing",
        ),
        # DuckDB's words for a full disk, from the Parquet writer and from the SQLite catalog (seen)
        (duckdb.IOException('IO Error: Could not write file "/x.parquet": No space left on device'), "full"),
        (duckdb.TransactionException('Failed to execute query "COMMIT": database or disk is full'), "full"),
        (duckdb.IOException('IO Error: Cannot open file "/x": Read-only file system'), "read-only"),
        (OSError(errno.EFBIG, "File too large", "/x"), "ulimit -f"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp"), "that is a folder: name a file"),
        (FileExistsError(errno.EEXIST, "File exists", "/dev/null"), "name a folder"),
        (OSError(errno.ECONNREFUSED, "Connection refused"), None),
        (duckdb.IOException("IO Error: No files found that match the pattern"), None),
    ],
)
def test_what_the_machine_refused_is_told_from_a_fault_in_the_data(
    error: Exception, hint: str | None
) -> None:
    found = lake.cannot_write(error) if isinstance(error, duckdb.Error) else storage_trouble(error)
    assert (found is None) if hint is None else (found is not None and hint in found), found


def test_a_bad_value_quoting_the_machine_s_words_is_still_a_bad_value() -> None:
    """A conversion error quotes the value: a tick reading "Permission denied" must be rejected as a
    bad tick, not stop the sink as if the disk refused it."""
    error = duckdb.ConversionException("Could not convert string 'Permission denied' to DECIMAL")
    assert lake.cannot_write(error) is None
