"""The `tickstore` command as a user runs it: help, versions, settings and values refused, kill -9 of the sink."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest import replay
from tests.cli.helpers import env_for, spawn_sink, tickstore
from tests.conftest import REPO, SHARED
from tests.ingest.helpers import query, reference_ticks
from tickstore import metrics_dir
from tickstore.settings import Settings


def test_help_lists_every_command(make_settings: Callable[..., Settings]) -> None:
    out = tickstore(make_settings(), "--help").stdout
    # the names in the Commands section, not words anywhere in the help (the quick start names most)
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == {
        "broker",
        "dataset",
        "demo",
        "feast",
        "ingest",
        "models",
        "monitor",
        "serve",
        "settings",
        "sink",
        "sql",
        "status",
        "stream",
        "train",
    }


def test_every_help_fits_an_80_column_terminal() -> None:
    from cli.main import main
    from tests.cli.test_readme_commands import every_command

    # a paragraph kept as written (click's \b) is printed as it is: too long a line wraps mid-word
    for command in every_command(main):
        ctx = command.context_class(command, info_name=command.name, terminal_width=80, max_content_width=80)
        wide = [line for line in command.get_help(ctx).splitlines() if len(line) > 80]
        assert not wide, (command.name, wide)


@pytest.mark.parametrize("width", [70, 80, 92, 100, 106, 120])
def test_help_never_breaks_a_line_inside_a_hyphenated_word(width: int) -> None:
    import click

    from cli.main import main
    from tests.cli.test_readme_commands import every_command

    # click wraps at hyphens: `[default: BTC-` / `USD,ETH-USD]`, `models:/tickstore-` / `volatility@champion`
    for command in every_command(main):
        assert command.context_class is not click.Context, command.name
        ctx = command.context_class(
            command, info_name=command.name, terminal_width=width, max_content_width=width
        )
        lines = command.get_help(ctx).splitlines()
        broken = [
            (a, b) for a, b in itertools.pairwise(lines) if re.search(r"\w-$", a) and re.match(r"\s*\w", b)
        ]
        assert not broken, (command.name, broken)
        assert "\u2011" not in "".join(lines)  # the stand-in for a held hyphen is never shown


def test_a_new_machine_s_first_feast_command_prints_no_library_chatter(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # an empty matplotlib config folder, as on a new machine: Feast imports matplotlib, which builds
    # its font cache then and logged "generated new fontManager" through tickstore's log handler
    s = make_settings()
    out = tickstore(s, "feast", "--help", env={**env_for(s), "MPLCONFIGDIR": str(tmp_path / "mpl")})
    assert (tmp_path / "mpl").is_dir(), "matplotlib was not imported: the test no longer tests anything"
    assert out.stdout.startswith("Usage:") and "fontManager" not in out.stdout + out.stderr


def test_version_names_the_engines(make_settings: Callable[..., Settings]) -> None:
    from importlib.metadata import version

    out = tickstore(make_settings(), "--version").stdout.strip()
    assert out.startswith(f"tickstore {version('tickstore')} (DuckDB {version('duckdb')}, Feast ")
    assert out.endswith(f"Python {sys.version.split()[0]})")


def test_a_command_removes_the_feast_metrics_folder_a_killed_one_left_and_its_own(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # `import feast` made /tmp/feast_metrics_<random>, which a command killed by `kill` left behind
    s = make_settings()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    gone = int(subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout)
    left = tmp / f"{metrics_dir.PREFIX}{metrics_dir._namespace()}-{gone}"
    left.mkdir()
    old = time.time() - 2 * metrics_dir.GONE_AFTER_S
    os.utime(left, (old, old))
    env = {**env_for(s), "TMPDIR": str(tmp)}
    for variable in ("PROMETHEUS_MULTIPROCESS_DIR", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(variable, None)  # as from a shell: the test process's own Feast set them
    run = tickstore(s, "status", check=False, env=env)  # it imports Feast, for the online store
    assert "Traceback" not in run.stderr and "online store" in run.stdout, run.stdout + run.stderr
    assert list(tmp.iterdir()) == []


def test_tickstore_s_own_options_may_follow_the_command(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # `tickstore models --home DIR` answered "No such option '--home'. Did you mean '--help'?"
    other = tmp_path / "other home"
    run = tickstore(make_settings(), "models", "--home", str(other), "-v")
    assert f"no models yet in sqlite:///{other}/mlflow/mlflow.db" in run.stdout + run.stderr
    run = tickstore(make_settings(), "models", f"--home={other}")
    assert f"sqlite:///{other}/mlflow" in run.stdout + run.stderr


def test_product_lists_are_trimmed_and_upper_cased_and_never_empty(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = make_settings()
    out = tmp_path / "sim.ndjson"
    tickstore(s, "ingest", "simulate", "--products", "btc-usd, eth-usd,", "--ticks", "20", "-o", str(out))
    products = {json.loads(line)["product_id"] for line in out.read_text().splitlines()}
    assert products == {"BTC-USD", "ETH-USD"}
    # an empty list used to simulate a million ticks of product "" (and --ticks -5 a traceback)
    for args in (("--products", " , "), ("--ticks", "-5")):
        run = tickstore(s, "ingest", "simulate", *args, "--out", str(out), check=False)
        assert run.returncode == 2 and "Invalid value" in run.stderr and "Traceback" not in run.stderr
    # ids the sink rejects: every tick of them was published, then rejected one by one
    run = tickstore(s, "ingest", "simulate", "--products", "BTC-USD,btc usd", "--out", str(out), check=False)
    assert run.returncode == 2 and "'BTC USD' is not a product id (a letter or digit" in run.stderr


def test_numbers_out_of_range_are_usage_errors_before_anything_starts(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    # `serve --port 80000` started gunicorn, which said it listened there, then tracebacks per worker
    for args, says in (
        (("serve", "--port", "80000"), "is not in the range"),
        (("demo", "--simulate-ticks", "0"), "is not in the range"),
        (("demo", "--simulate-ticks", "2000000000"), "is not in the range 1<=x<=1000000000"),
        (("demo", "--live-seconds", "-1"), "give a duration of 0 or more"),
        (("demo", "--live-seconds", "1e308"), "give at most 100 years"),  # as every duration
    ):
        run = tickstore(s, *args, check=False)
        assert run.returncode == 2 and says in run.stderr, (args, run.stderr)
        assert "Traceback" not in run.stderr and "Listening" not in run.stderr


DRIFT_RANGES = (
    "--reference",
    "2026-01-01T00:00..2026-01-01T01:00",
    "--current",
    "2026-01-01T01:00..2026-01-01T02:00",
)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("train", "--start", "2026-01-01T00:00", "--end", "2026-01-01T01:00", "--every", "0"), "'--every'"),
        (
            ("train", "--start", "2026-01-01T00:00", "--end", "2026-01-01T01:00", "--percentile", "150"),
            "'--percentile'",
        ),
        (("train", "--start", "2026-01-01T01:00", "--end", "2026-01-01T00:00"), "the range is empty"),
        (("monitor", "drift", *DRIFT_RANGES, "--max-share", "2"), "'--max-share'"),
        # a mistyped range was found only after the reference's features were built
        (
            ("monitor", "drift", *DRIFT_RANGES[:3], "2026-01-01T01:00"),
            "Invalid value for '--current': use START..END",
        ),
        (
            ("monitor", "drift", *DRIFT_RANGES[:3], "2026-01-01T02:00..2026-01-01T01:00"),
            "Invalid value for '--current': the range is empty",
        ),
        (("ingest", "replay", str(SHARED), "--speed", "0"), "'--speed'"),
        (("ingest", "replay", str(SHARED), "--duration", "5 minutes"), "'5 minutes' is not a duration"),
        (("ingest", "replay", str(SHARED), "--max-gap", "-1s"), "'-1s': give a duration of 0 or more"),
        (("serve", "--workers", "0"), "'--workers'"),
        (("sql", "SELECT 1", "--limit", "-1"), "'--limit'"),
        # each of these was a traceback (or, for NaN, let through: `--max-share nan` passed any drift)
        (("monitor", "drift", *DRIFT_RANGES, "--max-share", "nan"), "'nan' is not a number"),
        (("ingest", "replay", str(SHARED), "--speed", "nan"), "'nan' is not a number"),
        (("ingest", "simulate", "--seed", "-1", "-o", "x.ndjson"), "'--seed'"),
        (("ingest", "simulate", "--ticks", "1" + "0" * 20, "-o", "x.ndjson"), "'--ticks'"),
        (("ingest", "simulate", "-o", "/tmp"), "'/tmp' is a directory"),
        (("dataset", "build", "--entities", "/tmp", "-o", "x.parquet"), "'/tmp' is a directory"),
        (("models", "--limit", "1" + "0" * 20), "'--limit'"),
        # '' is the current folder to click: an unset `-o "$DIR"` wrote the report where the command ran
        (("monitor", "drift", *DRIFT_RANGES, "-o", ""), "'--out' / '-o': the path is empty"),
    ],
)
def test_values_that_mean_nothing_are_refused_before_any_work(
    make_settings: Callable[..., Settings], args: tuple[str, ...], says: str
) -> None:
    # --every 0 was a DuckDB binder traceback, --percentile 150 and a reversed range "no labels in ...",
    # --workers 0 a gunicorn master without workers
    run = tickstore(make_settings(), *args, check=False)
    assert run.returncode == 2 and says in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_a_missing_range_names_the_lake_busiest_stretches(make_settings: Callable[..., Settings]) -> None:
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    plain = tickstore(s, "train", check=False)  # no lake: the plain message, no traceback
    assert plain.returncode == 2 and "needs --start and --end (UTC)" in plain.stderr, plain.stderr
    # 2026-01-01 00:00 + 0..90 s, then 3 ticks two hours later (one day, two stretches); 2026-01-03, one tick
    later = [("BTC-USD", 7200.0 + t, 100.0) for t in (0, 10, 20)]
    load(
        s,
        tick_rows([("BTC-USD", t, 100.0) for t in range(0, 91, 10)] + later + [("BTC-USD", 172800.0, 100.0)]),
    )
    for args in (
        ("train", "--start", "2026-01-01"),
        ("dataset", "build", "--every", "5", "--out", "my set.parquet"),
    ):
        run = tickstore(s, *args, check=False)
        out = " ".join(run.stderr.split())
        assert run.returncode == 2 and "Traceback" not in out, out
        assert (
            "busiest stretches (no pause over 10 min): 2026-01-01T00:00..00:01 (10 ticks); "
            "2026-01-01T02:00..02:00 (3 ticks); 2026-01-03T00:00..00:00 (1 tick)"
        ) in out
        assert "--start 2026-01-01T00:00 --end 2026-01-01T00:02" in out  # a range to paste
        if "dataset" in args:  # the command to paste, quoted as a shell needs it
            assert "tickstore dataset build --every 5 --out 'my set.parquet' --start" in out, out


@pytest.mark.kafka
@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(kafka_settings: Settings) -> None:
    s = kafka_settings.model_copy(update={"sink_batch_rows": 2000, "sink_batch_ms": 50})
    files = replay.discover([SHARED])
    expected = reference_ticks(files)
    replay.replay(s, files)
    sink = spawn_sink(s)
    try:
        deadline = time.monotonic() + 120
        landed = 0
        while landed < 10_000 and time.monotonic() < deadline:  # mid-stream: some, not all, landed
            time.sleep(0.2)
            try:
                landed = query(s, "SELECT count(*) FROM ticks")[0][0]
            except Exception:
                landed = 0
        assert 0 < landed < sum(expected.values())
    finally:
        sink.send_signal(signal.SIGKILL)
        sink.wait(30)
    tickstore(s, "sink", "--until-idle")
    counts = dict(query(s, "SELECT product_id, count(*) FROM ticks GROUP BY ALL"))
    assert counts == expected
    assert query(s, "SELECT count(*) = count(DISTINCT tick_id) FROM ticks") == [(True,)]


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("TICKSTORE_SERVE_CPUS", "0;1", "TICKSTORE_SERVE_CPUS: '0;1' is not a CPU list"),
        ("TICKSTORE_KAFKA_CONFIG", "security.protocol=SSL", "TICKSTORE_KAFKA_CONFIG: not JSON"),
        ("TICKSTORE_KAFKA_CONFIG", '{"acks": [1]}', "TICKSTORE_KAFKA_CONFIG: property 'acks' is [1]: give a"),
    ],
)
def test_a_mistyped_setting_names_its_variable_not_a_traceback(
    make_settings: Callable[..., Settings], variable: str, value: str, said: str
) -> None:
    s = make_settings()
    bad = subprocess.run(
        [sys.executable, "-m", "cli", "serve"],
        env={**env_for(s), variable: value},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
    assert said in " ".join(bad.stderr.split())


def test_a_variable_naming_no_setting_is_warned_of_and_the_command_runs(
    make_settings: Callable[..., Settings],
) -> None:
    # pydantic ignores it: a misspelt bootstrap left the embedded broker in use without a word
    s = make_settings()
    env = {**env_for(s), "TICKSTORE_KAFKA_BOOTSTRAP_SERVERS": "kafka1:9092"}
    run = tickstore(s, "models", env=env)
    assert run.stderr.splitlines() == [
        "warning: TICKSTORE_KAFKA_BOOTSTRAP_SERVERS is not a tickstore setting and is ignored: did you "
        "mean TICKSTORE_KAFKA_BOOTSTRAP?",
        f"no models yet in {s.mlflow_tracking_uri()}: `tickstore train` logs them",
    ]
    assert "warning" not in tickstore(s, "models").stderr


def test_cpus_the_machine_does_not_offer_are_refused_before_anything_starts(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    missing = max(os.sched_getaffinity(0)) + 1
    for command in ("stream", "serve"):
        out = tickstore(s, command, "--cpus", f"0,{missing}", check=False)
        err = " ".join(out.stderr.split())
        assert out.returncode != 0 and "Traceback" not in err, err
        assert f"CPU {missing} is not one this process may run on" in err, err
    assert not s.lake_dir.exists()  # refused before the stream touched any state


def test_times_are_taken_as_tickstore_sql_prints_them() -> None:
    from datetime import UTC, datetime

    import click

    from cli.ranges import WHEN

    expected = datetime(2026, 1, 1, 8, 23, tzinfo=UTC)
    # `tickstore sql` prints 2026-01-01T08:23:00+00:00: pasted into --start, it was refused
    for text in (
        "2026-01-01T08:23:00.000000+00:00",
        "2026-01-01T09:23+01:00",
        "2026-01-01T08:23Z",
        "2026-01-01T08:23",
        "2026-01-01 08:23:00",
    ):
        assert WHEN.convert(text, None, None) == expected, text
    with pytest.raises(click.BadParameter, match="'yesterday' is not an ISO 8601 time"):
        WHEN.convert("yesterday", None, None)


def test_ctrl_c_inside_a_duckdb_query_aborts_without_a_traceback() -> None:
    """DuckDB gives Ctrl-C mid-query as RuntimeError("Query interrupted") caused by the KeyboardInterrupt
    (seen in `dataset build` and `sql`): the root group says "Aborted!" as click does for Ctrl-C, and
    any other RuntimeError still surfaces."""
    import click
    from click.testing import CliRunner

    from cli.main import _Group

    @click.group(cls=_Group)
    def root() -> None:
        """A root group like tickstore's."""

    @root.command()
    @click.argument("how")
    def query(how: str) -> None:
        """Fail the way DuckDB does (``ctrl-c``), or otherwise."""
        if how == "ctrl-c":
            raise RuntimeError("Query interrupted") from KeyboardInterrupt()
        raise RuntimeError("something else")

    interrupted = CliRunner().invoke(root, ["query", "ctrl-c"])
    assert interrupted.exit_code == 1 and "Aborted!" in interrupted.output, interrupted.output
    other = CliRunner().invoke(root, ["query", "other"])
    assert isinstance(other.exception, RuntimeError) and str(other.exception) == "something else"


def test_sqlite_refusing_a_write_is_named_not_a_traceback() -> None:
    """MLflow's store on a full disk: `tickstore train` printed a page of SQLAlchemy traceback."""
    import sqlite3

    import click
    from click.testing import CliRunner
    from sqlalchemy.exc import OperationalError

    from cli.main import _Group

    @click.group(cls=_Group)
    def root() -> None:
        """A root group like tickstore's."""

    @root.command()
    @click.argument("why")
    def write(why: str) -> None:
        """Fail as MLflow's SQLAlchemy store does when SQLite refuses."""
        raise OperationalError("CREATE TABLE mcp_servers (...)", {}, sqlite3.OperationalError(why))

    full = CliRunner().invoke(root, ["write", "database or disk is full"])
    assert full.exit_code == 1, full.output
    assert "Error: database or disk is full (the disk is full: free some space there)" in full.output
    assert "CREATE TABLE" not in full.output
    read_only = CliRunner().invoke(root, ["write", "attempt to write a readonly database"])
    assert "(the file system is read-only)" in read_only.output
    # SQLite's other errors are no machine's refusal: they surface as they are
    other = CliRunner().invoke(root, ["write", "table mcp_servers already exists"])
    assert isinstance(other.exception, OperationalError)
