"""tickstore installed and run elsewhere: without its source tree, from another folder, with a home that is no folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from tests.cli.helpers import env_for, tickstore
from tests.conftest import REPO, free_port
from tests.training.helpers import seeded
from tickstore.settings import Settings


def installed_copy(folder: Path) -> Path:
    """What an install from a wheel puts in site-packages: the packages pyproject.toml lists, with
    their package data, and nothing else of the source tree."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package in config["packages"]:
        source = REPO / package.replace(".", "/")
        target = folder / package.replace(".", "/")
        target.mkdir(parents=True, exist_ok=True)
        for pattern in ["*.py", *config.get("package-data", {}).get(package, [])]:
            for file in source.glob(pattern):
                shutil.copy(file, target / file.name)
    return folder


def test_an_install_without_the_source_tree_says_to_clone_and_install_editable(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = seeded(make_settings)  # a lake with ticks: the commands get as far as the feature definitions
    site = installed_copy(tmp_path / "site")
    env = {**env_for(s), "PYTHONPATH": str(site)}
    probe = subprocess.run(
        [sys.executable, "-c", "import cli, tickstore.paths as p; print(cli.__file__, p.missing())"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith(str(site)), "the copy is not what runs: the test would test the repo"
    told = f"{site / 'sql'} and {site / 'feature_repo'} not found beside tickstore's code"
    grid = ["--every", "1", "--start", "2026-01-01T00:00:00", "--end", "2026-01-01T00:01:00"]
    for args in (["dataset", "build", *grid, "--out", "x.parquet"], ["feast", "plan"], ["stream"]):
        run = tickstore(s, *args, check=False, env=env, cwd=tmp_path)
        said = " ".join(run.stderr.split())
        assert run.returncode == 1 and "Traceback" not in run.stderr, (args, run.stderr)
        assert told in said and "`make venv` (or `pip install -e .`)" in said, (args, said)
    # status names it beside the parts that answer; help and ad-hoc SQL over the lake still work
    run = tickstore(s, "status", check=False, env=env, cwd=tmp_path)
    assert (
        run.returncode == 1
        and "lake /" in run.stdout
        and "online store (SQLite): missing: " + told in " ".join(run.stdout.split())
    )
    assert tickstore(s, "train", "--help", env=env, cwd=tmp_path).stdout.startswith("Usage:")
    assert "600" in tickstore(s, "sql", "SELECT count(*) FROM ticks", env=env, cwd=tmp_path).stdout
    run = tickstore(s, "sql", "SELECT * FROM ticks_60s", check=False, env=env, cwd=tmp_path)
    assert run.returncode == 1 and "feature views: none (" + told in " ".join(run.stderr.split())


def test_no_lake_in_the_current_folder_names_the_source_tree_s(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from tickstore import lake

    site = installed_copy(tmp_path / "site")  # a tree of its own, so its .tickstore is the test's
    lake.connect(Settings(home=site / ".tickstore")).close()
    elsewhere = tmp_path / "elsewhere"  # as `tickstore sql` run from sql/ or feature_repo/
    elsewhere.mkdir()
    env = {k: v for k, v in env_for(make_settings()).items() if k != "TICKSTORE_HOME"}
    env["PYTHONPATH"] = str(site)
    run = tickstore(make_settings(), "sql", "SELECT 1", check=False, env=env, cwd=elsewhere)
    said = " ".join(run.stderr.split())
    assert run.returncode == 1, run.stderr
    assert f"no lake at {elsewhere / '.tickstore' / 'lake' / 'catalog.sqlite'}: run `tickstore sink`" in said
    assert (
        f"(the source tree's is {site / '.tickstore'}: run tickstore from {site}, or set TICKSTORE_HOME)"
        in said
    )
    # from the tree itself it is found
    assert tickstore(make_settings(), "sql", "SELECT 41 + 1", env=env, cwd=site).stdout.count("42") == 1
    # a command that would make the data directory there (`tickstore sink` from sql/ started a second,
    # partial lake) is refused before making anything; its help is not
    for command in (
        ["broker", "start"],
        ["sink", "--until-idle"],
        ["serve"],
        ["feast", "apply"],
        ["ingest", "coinbase"],
    ):
        run = tickstore(make_settings(), *command, check=False, env=env, cwd=elsewhere)
        said = " ".join(run.stderr.split())
        assert run.returncode == 1, run.stderr
        assert (
            f"the source tree's, with its lake, is {site / '.tickstore'}: run tickstore from {site}" in said
        )
        assert (
            "Nothing was made here; to start a new data directory in this folder, `mkdir .tickstore` first"
            in said
        )
        assert list(elsewhere.iterdir()) == [], command
    assert tickstore(make_settings(), "sink", "--help", env=env, cwd=elsewhere).stdout.startswith("Usage:")
    # the commands that only look say where the data is, first
    run = tickstore(make_settings(), "status", check=False, env=env, cwd=elsewhere)
    assert run.stdout.splitlines()[0] == (
        f"no data directory in this folder ({elsewhere / '.tickstore'} does not exist); the source tree's, "
        f"with its lake, is {site / '.tickstore'}: `tickstore --home {site / '.tickstore'} status`"
    ), run.stdout
    run = tickstore(make_settings(), "models", env=env, cwd=elsewhere)
    assert f"the source tree's is {site / '.tickstore'}: `--home {site / '.tickstore'}`" in " ".join(
        run.stderr.split()
    )
    assert (
        "Usage: tickstore feast"
        in tickstore(make_settings(), "feast", "--help", env=env, cwd=elsewhere).stdout
    )
    assert list(elsewhere.iterdir()) == []  # its yaml was written into a data directory made for the help
    # as it says, a folder made first is a data directory of its own: the sink goes on to the broker
    (elsewhere / ".tickstore").mkdir()
    # on a port of its own: a broker a developer runs on the default one (`make test` beside it) answered
    quiet = env | {"TICKSTORE_BROKER_PORT": str(free_port())}
    run = tickstore(make_settings(), "sink", "--until-idle", check=False, env=quiet, cwd=elsewhere)
    assert run.returncode == 1 and "no Kafka broker answers" in run.stderr, run.stderr


def test_a_home_that_is_no_directory_is_named_with_what_to_do(tmp_path: Path) -> None:
    """A file where TICKSTORE_HOME should be (or a full disk, a read-only mount): every command that
    makes its folders printed Python's traceback of a failed mkdir."""
    home = tmp_path / "not-a-folder"
    home.write_text("")
    for command in (["broker", "start"], ["sink", "--until-idle"], ["status"]):
        got = subprocess.run(
            [sys.executable, "-m", "cli", "--home", str(home), *command],
            # a free broker port: one a developer's broker holds (the default) was refused before the home
            env={k: v for k, v in os.environ.items() if not k.startswith("TICKSTORE_")}
            | {"TICKSTORE_BROKER_PORT": str(free_port())},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert got.returncode == 1 and "Traceback" not in got.stderr, got.stderr
        assert f"Not a directory: {home}/" in got.stderr, got.stderr
        assert f"TICKSTORE_HOME ({home}): it must be a directory this user can write" in got.stderr
