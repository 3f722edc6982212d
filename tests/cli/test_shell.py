"""`tickstore sql` as a shell (cli/shell.py): one connection, each commit seen, errors survived, dot commands."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from tests.cli.helpers import env_for, tickstore
from tests.conftest import REPO
from tickstore import feature_sql
from tickstore.settings import Settings

tables_views = "feature views (sql/): " + ", ".join(feature_sql.views())


def test_the_sql_shell_sees_each_new_commit_and_survives_errors(
    make_settings: Callable[..., Settings],
) -> None:
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    shell = subprocess.Popen(
        [sys.executable, "-m", "cli", "sql", "--interactive", "--format", "csv"],
        env=env_for(s),
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert shell.stdin is not None and shell.stdout is not None

    def ask(statement: str) -> list[str]:
        shell.stdin.write(statement + "\n")  # type: ignore[union-attr]
        shell.stdin.flush()  # type: ignore[union-attr]
        return [shell.stdout.readline().strip() for _ in range(2)]  # type: ignore[union-attr]

    try:
        assert ask("SELECT count(*) AS n\nFROM ticks;") == ["n", "1"]  # a statement over two lines
        load(s, tick_rows([("ETH-USD", 1.0, 10.0)]))  # committed by another process meanwhile
        # an error, then a dot command (its answer on stdout, as rows are): it goes on
        assert ask("SELECT * FROM nope;\n.tables") == ["tables: ticks, ticks_rejected", tables_views]
        assert ask("SELECT count(*) AS n FROM ticks;") == ["n", "2"]
        assert ask("SELECT count(*) AS n FROM ticks_60s;") == ["n", "2"]  # the feature views too
        _, err = shell.communicate("DELETE FROM ticks;\n", timeout=60)
    finally:
        shell.kill()
    assert shell.returncode == 1, err  # from a pipe, a failed statement is the exit code
    assert "Table with name nope does not exist" in err and "add --write to change it" in err
    assert "Traceback" not in err


def test_the_shells_dot_commands_work_in_one_shot_too(make_settings: Callable[..., Settings]) -> None:
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    tables = tickstore(s, "sql", ".tables")
    assert tables.stdout.splitlines() == ["tables: ticks, ticks_rejected", tables_views], tables.stdout
    unknown = tickstore(s, "sql", ".tabels", check=False)
    assert unknown.returncode == 1 and ".help lists them" in unknown.stderr
