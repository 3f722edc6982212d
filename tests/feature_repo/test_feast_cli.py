"""The `feast` CLI in a copy of feature_repo/: apply, plan, feature-views list, materialize(-incremental)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from feast import FeatureStore

from tests.conftest import REPO
from tests.tickstore_feast.conftest import load, tick_rows
from tickstore.settings import Settings


def feast(
    repo: Path, *args: str, home: Path | None = None, failing: bool = False
) -> subprocess.CompletedProcess[str]:
    """Feast's own CLI in ``repo``; TICKSTORE_HOME set to ``home`` if given (and nothing else of ours).
    Its exit code must be 0, or not 0 where ``failing``."""
    feast_bin = Path(sys.executable).parent / "feast"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKSTORE_")}
    if home is not None:
        env["TICKSTORE_HOME"] = str(home)
    result = subprocess.run(
        [str(feast_bin), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert (result.returncode != 0) == failing, result.stderr[-2000:]
    return result


def copy_repo(folder: Path) -> Path:
    """feature_repo/ beside sql/ in ``folder``, as a clone has them; returns the feature repo."""
    shutil.copytree(
        REPO / "feature_repo", folder / "feature_repo", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO / "sql", folder / "sql")
    return folder / "feature_repo"


# a module of feature_repo/ whose view names a column (ret_std_20s) its SQL (ticks_10s.sql) lacks
WIDE_VIEW = (
    "from datetime import timedelta\n"
    "from feast import FeatureView, Field\n"
    "from feast.types import Float64\n"
    "from features import SQL, product\n"
    "from tickstore_feast import DuckDBSource\n"
    "wide = FeatureView(name='wide', entities=[product], ttl=timedelta(seconds=10),\n"
    "    schema=[Field(name='ret_std_10s', dtype=Float64), Field(name='ret_std_20s', dtype=Float64)],\n"
    "    source=DuckDBSource(name='wide', sql_file=SQL / 'ticks_10s.sql'))\n"
)


def point_at(repo: Path, home: Path) -> Path:
    """``repo`` with its feature_store.yaml's data paths in ``home`` (a test's lake), not ../.tickstore."""
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    home = home.resolve()
    config["registry"]["path"] = str(home / "feast" / "registry.db")
    config["online_store"]["path"] = str(home / "feast" / "online.db")
    config["offline_store"]["home"] = str(home)
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    return repo


def feast_out(repo: Path, *args: str) -> str:
    return feast(repo, *args).stdout


def test_feast_cli_apply_plan_list_materialize(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = make_settings()
    load(s, tick_rows([("BTC-USD", i, 100.0 + i / 100) for i in range(120)]))
    # the repo layout a user has: feature_repo/ next to sql/, data paths pointed at this test's home
    repo = point_at(copy_repo(tmp_path), s.home)

    applied = feast_out(repo, "apply")
    assert (
        "Created feature view ticks_60s" in applied and "Created feature service volatility_model" in applied
    )
    assert "No changes to registry" in feast_out(repo, "plan")
    # the repo names its project (as feature_store.yaml does): Feast made one up, saying so at every run
    assert "No project found" not in applied
    listed = feast_out(repo, "feature-views", "list")
    assert all(v in listed for v in ("ticks_10s", "ticks_60s", "ticks_300s"))
    feast(repo, "materialize", "2025-12-31T23:59:00", "2026-01-01T00:01:00")
    feast(repo, "materialize-incremental", "2026-01-01T00:02:30")
    # the SQLite online store now serves the newest row (t = 119 s): ticks 59..119 s, both ends included
    online = FeatureStore(repo_path=str(repo)).get_online_features(
        features=["ticks_60s:tick_count_60s"], entity_rows=[{"product_id": "BTC-USD"}]
    )
    assert online.to_dict()["tick_count_60s"] == [61]
    # a retrieval without entity rows, as the CLI offers it: each product as of the range's end
    rows = json.loads(
        feast_out(
            repo,
            "get-historical-features",
            "-f",
            "ticks_60s:tick_count_60s",
            "-s",
            "2026-01-01 00:01:00",
            "-e",
            "2026-01-01 00:01:30",
        )
    )
    assert [(r["product_id"], r["tick_count_60s"]) for r in rows] == [("BTC-USD", 61)]  # ticks 30..90 s


def test_feast_apply_in_a_fresh_clone_makes_the_data_directory(tmp_path: Path) -> None:
    # the clone as a new user has it: feature_repo/ beside sql/, feature_store.yaml untouched, and no
    # ../.tickstore yet (Feast's registry made only its last folder: FileNotFoundError)
    copy_repo(tmp_path)
    applied = feast_out(tmp_path / "feature_repo", "apply")
    assert "Created feature view ticks_60s" in applied
    assert (tmp_path / ".tickstore" / "feast" / "registry.db").is_file()
    # the feature SQL was bound against an empty lake with the real schema, which the sink then fills
    assert (tmp_path / ".tickstore" / "lake" / "catalog.sqlite").is_file()
    assert "No changes to registry" in feast_out(tmp_path / "feature_repo", "plan")


def test_feast_apply_refuses_a_view_naming_a_column_its_sql_does_not_give(tmp_path: Path) -> None:
    # Feast validates each source without its view: it registered this one, and the first training
    # set or materialization that read it failed with DuckDB's binder error
    repo = copy_repo(tmp_path)
    (repo / "more.py").write_text(WIDE_VIEW)
    for command in ("plan", "apply"):
        failed = feast(repo, command, failing=True)
        said = " ".join((failed.stdout + failed.stderr).split())
        assert "Error: feature view 'wide' names 'ret_std_20s', which its source 'wide' does not give" in said
        assert "Traceback" not in said, said  # Feast's CLI printed any other exception as one
    # a SQL that does not run, the same way
    sql = tmp_path / "sql" / "ticks_10s.sql"
    sql.write_text(sql.read_text().replace("stddev_samp", "stddev_smp"))
    said = " ".join(feast(repo, "apply", failing=True).stderr.split())
    assert "Error: the SQL of 'ticks_10s' (feature source of `feast apply`) does not run on the lake" in said
    assert "Traceback" not in said, said
    sql.write_text(sql.read_text().replace("stddev_smp", "stddev_samp"))
    # nothing registered; with the view mended, apply goes through
    assert "ticks_60s" not in feast_out(repo, "feature-views", "list")
    (repo / "more.py").write_text((repo / "more.py").read_text().replace("ret_std_20s", "ret_mean_10s"))
    assert "Created feature view wide" in feast_out(repo, "apply")


def test_feast_apply_checks_a_view_declaring_equal_ties(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # a frame ending at the current row, not its last peer: ticks sharing a time get other counts
    s = make_settings()
    load(s, tick_rows([("BTC-USD", 10.0, 100.0), ("BTC-USD", 10.0, 100.5), ("BTC-USD", 20.0, 100.0)]))
    repo = point_at(copy_repo(tmp_path), s.home)
    (repo / "more.py").write_text(
        "from datetime import timedelta\n"
        "from feast import FeatureView, Field\n"
        "from feast.types import Int64\n"
        "from features import product\n"
        "from tickstore_feast import DuckDBSource\n"
        "SQL = ('SELECT product_id, event_time, count(*) OVER (PARTITION BY product_id ORDER BY event_time '\n"
        "    'ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n FROM ticks')\n"
        "n_ticks = FeatureView(name='n_ticks', entities=[product], schema=[Field(name='n', dtype=Int64)],\n"
        "    source=DuckDBSource(name='n_src', query=SQL, lookback=timedelta(0), ties_equal=True))\n"
    )
    failed = feast(repo, "apply", failing=True)
    said = " ".join((failed.stdout + failed.stderr).split())
    assert (
        "Error: feature view 'n_ticks' declares ties_equal=True, but its rows at product_id=BTC-USD, "
        "event_time=2026-01-01 00:00:10+00:00 differ"
    ) in said, said
    (repo / "more.py").write_text((repo / "more.py").read_text().replace("ROWS BETWEEN", "RANGE BETWEEN"))
    # ties equal: RANGE ends at the last peer
    assert "Created feature view n_ticks" in feast_out(repo, "apply")


def feature_store_of(s: Settings) -> FeatureStore:
    from tickstore_feast.repo import feature_store

    return feature_store(s, apply=False)


def online_tick_count(store: FeatureStore) -> list[object]:
    rows = store.get_online_features(
        features=["ticks_60s:tick_count_60s"], entity_rows=[{"product_id": "BTC-USD"}]
    )
    return rows.to_dict()["tick_count_60s"]


def test_tickstore_feast_runs_feasts_cli_on_the_data_under_tickstore_home(
    make_settings: Callable[..., Settings],
) -> None:
    from tests.cli.helpers import tickstore
    from tickstore_feast.repo import feature_store

    s = make_settings()
    load(s, tick_rows([("BTC-USD", i, 100.0 + i / 100) for i in range(120)]))
    assert "Created feature view ticks_60s" in tickstore(s, "feast", "apply").stdout
    said = tickstore(s, "feast", "materialize", "2025-12-31T23:59:00", "2026-01-01T00:03:00").stdout
    # Feast colours its output wherever it goes: in a pipe (here) it comes without the escape codes
    assert "Materializing 4 feature views from 2025-12-31 23:59:00+00:00" in said and "\x1b[" not in said
    # in the online store under TICKSTORE_HOME, where `tickstore serve` reads (ticks 59..119 s)
    assert online_tick_count(feature_store(s, apply=False)) == [61]
    assert "Usage: tickstore feast" in tickstore(s, "feast", "--help").stdout  # Feast's own help
    # describe shows the view's SQL as lines, where Feast prints its source's options base64-encoded
    described = yaml.safe_load(tickstore(s, "feast", "feature-views", "describe", "ticks_60s").stdout)
    options = described["spec"]["batchSource"]["customOptions"]["configuration"]
    sql = (REPO / "sql" / "ticks_60s.sql").read_text()
    assert options == {"query": sql, "table": None, "lookback_s": 60.0, "ties_equal": True}
    source = yaml.safe_load(tickstore(s, "feast", "data-sources", "describe", "ticks_10s").stdout)
    assert source["customOptions"]["configuration"]["query"].startswith("-- ticks_10s: ")
    # Feast's own check of its arguments is said as a usage error, not a traceback through click
    backwards = tickstore(
        s, "feast", "materialize", "2026-01-01T00:03:00", "2025-12-31T23:59:00", check=False
    )
    assert backwards.returncode == 2 and "Traceback" not in backwards.stderr, backwards.stderr
    assert "Error: The given start_date 2026-01-01 00:03:00+00:00 is greater than" in backwards.stderr
    # times Feast's CLI could not read, and a view it does not know, were tracebacks
    for args, said in (
        (("materialize", "garbage", "2026-01-01"), "'garbage' is not a time (Unknown string format"),
        (("materialize", "2026-01-01", "2026-02-30"), "'2026-02-30' is not a time (day is out of range"),
        (("materialize-incremental", "2026-13-45"), "'2026-13-45' is not a time (month must be in 1..12)"),
        (("materialize", "2026-01-01", "2026-01-02", "-v", "nosuch"), "Feature view nosuch does not exist"),
    ):
        run = tickstore(s, "feast", *args, check=False)
        assert run.returncode in (1, 2) and "Traceback" not in run.stderr, run.stderr
        assert said in run.stderr, run.stderr


def test_plain_feast_keeps_to_the_yaml_and_says_so_when_tickstore_home_points_elsewhere(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = make_settings()
    load(s, tick_rows([("BTC-USD", i, 100.0 + i / 100) for i in range(120)]))
    repo = copy_repo(tmp_path)
    feast(repo, "apply")
    run = feast(repo, "materialize", "2025-12-31T23:59:00", "2026-01-01T00:03:00", home=s.home)
    assert "for the data under TICKSTORE_HOME, run the same command as `tickstore feast ...`" in " ".join(
        run.stderr.split()
    )
    # The lake used to come from TICKSTORE_HOME while the registry and online store were the yaml's:
    # one home's ticks went into another home's online store. Now all three are the yaml's (empty).
    assert online_tick_count(FeatureStore(repo_path=str(repo))) == [None]


def plain_feast_on(s: Settings, tmp_path: Path) -> Callable[..., str]:
    """Feast's CLI in the checkout's feature_repo/, its yaml's relative data paths leading to ``s.home``
    (whose lake gets two minutes of ticks)."""
    load(s, tick_rows([("BTC-USD", i, 100.0 + i / 100) for i in range(120)]))
    home, here = s.home.resolve(), REPO / "feature_repo"
    config = yaml.safe_load((here / "feature_store.yaml").read_text())
    config["registry"]["path"] = os.path.relpath(home / "feast" / "registry.db", here)
    config["online_store"]["path"] = os.path.relpath(home / "feast" / "online_store.db", here)
    config["offline_store"]["home"] = str(home)
    (tmp_path / "feature_store.yaml").write_text(yaml.safe_dump(config))

    def plain(*args: str) -> str:
        return feast_out(here, "--feature-store-yaml", str(tmp_path / "feature_store.yaml"), *args)

    return plain


def served_after_materializing(plain: Callable[..., str], s: Settings) -> list[object]:
    """`feast materialize` through ``plain``, then the 60 s tick count online (61: ticks 59..119 s)."""
    plain("materialize", "2025-12-31T23:59:00", "2026-01-01T00:03:00")
    return online_tick_count(feature_store_of(s))


def test_feast_apply_and_tickstore_feast_apply_take_turns_on_one_data_directory(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # Feast's CLI in feature_repo/ spells the online store `<feature_repo>/../.tickstore/...`; tickstore
    # spelled the same file `<checkout>/.tickstore/...`. With two spellings Feast's apply saw the path
    # "updated" and only tore the tables down: after the second apply there were none, and
    # `feast materialize` failed with "no such table: tickstore_ticks_10s".
    from tests.cli.helpers import tickstore

    s = make_settings()
    plain = plain_feast_on(s, tmp_path)
    plain("apply")
    tickstore(s, "feast", "apply")
    plain("apply")
    assert served_after_materializing(plain, s) == [61]
    assert "sqlite table" not in plain("plan")  # no table to create, move or drop


def test_after_a_tickstore_command_feasts_plan_has_no_table_to_create(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # FeatureStore.apply makes the online tables but records none in the registry, as Feast's CLI
    # does: its plan and apply then announced "Created sqlite table" for every view, none to create
    from tickstore_feast.repo import feature_store

    s = make_settings()
    plain = plain_feast_on(s, tmp_path)
    feature_store(s)  # what `tickstore stream`, `train` or `dataset build` do first
    planned = plain("plan")
    assert "No changes to infrastructure" in planned and "sqlite table" not in planned, planned


def test_tickstore_respells_the_tables_an_older_tickstore_recorded(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from feast.infra.online_stores.sqlite import SqliteTable

    from tickstore_feast.repo import feature_store

    s = make_settings()
    plain = plain_feast_on(s, tmp_path)
    plain("apply")
    # the registry as an older `tickstore feast apply` left it: the same file, spelled without `..`
    store = feature_store_of(s)
    infra = store.registry.get_infra(store.project)
    for table in infra.infra_objects:
        assert isinstance(table, SqliteTable)
        table.path = str(s.home.resolve() / "feast" / "online_store.db")
    store.registry.update_infra(infra, store.project, commit=True)
    feature_store(s)  # what `tickstore stream`, `train` or `dataset build` do first
    plain("apply")
    assert served_after_materializing(plain, s) == [61]


def test_materialize_incremental_over_recorded_ticks_says_why_it_loaded_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    # a view never materialized starts at now - TTL, after the recorded end: nothing, without a word
    from tests.cli.helpers import tickstore
    from tickstore_feast.repo import feature_store

    s = make_settings()
    load(s, tick_rows([("BTC-USD", i, 100.0 + i / 100) for i in range(120)]))
    tickstore(s, "feast", "apply")
    said = " ".join(tickstore(s, "feast", "materialize-incremental", "2026-01-01T00:03:00").stderr.split())
    assert "ticks_60s: nothing to materialize, the range starts after it ends (" in said, said
    assert said.count("run `materialize START END` once") == 1, said  # the advice once, not per view
    assert online_tick_count(feature_store(s, apply=False)) == [None]
    tickstore(s, "feast", "materialize", "2025-12-31T23:59:00", "2026-01-01T00:03:00")
    assert online_tick_count(feature_store(s, apply=False)) == [61]


def test_feast_apply_after_feast_teardown_or_delete_makes_the_online_tables_again(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # Feast's teardown (and `feast delete VIEW`) drops the tables and the views but leaves the tables
    # recorded: the next apply had "No changes to infrastructure", and materialize met "no such table"
    s = make_settings()
    plain = plain_feast_on(s, tmp_path)
    plain("apply")
    plain("teardown")
    assert "Created sqlite table tickstore_ticks_60s" in plain("apply")
    plain("delete", "ticks_60s")
    assert "Created sqlite table tickstore_ticks_60s" in plain("apply")
    assert served_after_materializing(plain, s) == [61]
