"""Tab completion of `tickstore` itself in bash or zsh (click's, as the README sets it up)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.cli.helpers import env_for
from tests.conftest import REPO
from tests.training.helpers import seeded
from tickstore.settings import Settings

TICKSTORE = str(Path(sys.executable).with_name("tickstore"))  # the installed command: click names it so


def complete(words: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash is offered for the last of ``words`` (a word of its own when they end with a space)."""
    asked = {
        **(os.environ if env is None else env),
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (words[-1] != " ")),
        "_TICKSTORE_COMPLETE": "bash_complete",
    }
    run = subprocess.run([TICKSTORE], env=asked, cwd=REPO, capture_output=True, text=True, timeout=60)
    return [line.split(",", 1)[1] for line in run.stdout.splitlines() if line]


def test_bash_completes_commands_options_and_choices_as_the_readme_says() -> None:
    script = subprocess.run(
        [TICKSTORE], env={**os.environ, "_TICKSTORE_COMPLETE": "bash_source"}, capture_output=True, text=True
    ).stdout
    assert "complete -o nosort -F _tickstore_completion" in script
    assert complete("tickstore da") == ["dataset"]
    assert complete("tickstore sql --format ") == ["table", "csv", "json"]
    assert "--every" in complete("tickstore dataset build --")


def test_features_complete_from_the_sql_files_and_products_from_the_lake(
    make_settings: Callable[..., Settings],
) -> None:
    assert complete("tickstore dataset build --features ticks_6") == ["ticks_60s"]
    assert complete("tickstore dataset build --features ticks_10s,ticks_60s:ret_s") == [
        "ticks_10s,ticks_60s:ret_std_60s"
    ]
    s = seeded(make_settings)
    assert complete("tickstore dataset build --products ", env_for(s)) == ["BTC-USD", "ETH-USD"]
    assert complete("tickstore dataset build --products btc-usd,e", env_for(s)) == ["btc-usd,ETH-USD"]
    # no lake: nothing offered, and no error printed into the user's command line
    nowhere = {**env_for(s), "TICKSTORE_HOME": str(s.home.parent / "no-lake-here")}
    assert complete("tickstore dataset build --products ", nowhere) == []
    assert not (s.home.parent / "no-lake-here").exists()  # nor a lake made for the asking
