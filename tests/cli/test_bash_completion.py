"""Tab completion of `tickstore` itself in bash or zsh (click's, as the README sets it up)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC
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


def bash_offers(line: str, wordbreaks: str = "\"'><=;|&(:", env: dict[str, str] | None = None) -> list[str]:
    """What tickstore's completion script, sourced in a real bash, puts in COMPREPLY for ``line`` (the
    cursor at its end), its words cut as bash cuts them: at blanks, and around ``wordbreaks``."""
    breaks = re.escape(wordbreaks)
    words = re.findall(rf"[^\s{breaks}]+|[{breaks}]+", line) + ([""] if line.endswith(" ") else [])
    script = "\n".join(
        [
            'eval "$(_TICKSTORE_COMPLETE=bash_source tickstore)"',
            f"COMP_WORDBREAKS={shlex.quote(' ' + wordbreaks)}",
            f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}",
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}",
            "_tickstore_completion tickstore",
            "printf '%s\\n' \"${COMPREPLY[@]}\"",
        ]
    )
    path = f"{Path(TICKSTORE).parent}{os.pathsep}{os.environ['PATH']}"
    run = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env={**(os.environ if env is None else env), "PATH": path},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return [w for w in run.stdout.splitlines() if w]


def test_bash_completes_a_views_features_after_the_colon_it_splits_words_at() -> None:
    # bash cuts `ticks_60s:ret_s` into three words and replaces only the last: click's own script
    # passed the three on, and nothing was offered
    assert bash_offers("tickstore dataset build --features ticks_60s:ret_s") == ["ret_std_60s"]
    assert bash_offers("tickstore dataset build --features ticks_10s,ticks_60s:spread_b") == [
        "spread_bps_mean_60s"
    ]
    after_colon = bash_offers("tickstore dataset build --features ticks_60s:")
    assert "ret_mean_60s" in after_colon and "tick_count_60s" in after_colon
    assert bash_offers("tickstore dataset build --features=ticks_6") == ["ticks_60s"]
    assert bash_offers("tickstore dataset build --features=ticks_60s:ret_m") == ["ret_mean_60s"]
    # words bash does not cut complete whole, as before
    assert bash_offers("tickstore dataset build --features ticks_6") == ["ticks_60s"]
    assert bash_offers("tickstore sql --format c") == ["csv"]
    # a user who took `:` out of COMP_WORDBREAKS (as the README once said to) gets the whole argument
    assert bash_offers("tickstore dataset build --features ticks_60s:ret_s", wordbreaks="\"'><=;|&(") == [
        "ticks_60s:ret_std_60s"
    ]


def test_serve_model_completes_the_champion_and_the_logged_models(
    make_settings: Callable[..., Settings],
) -> None:
    from mlflow.tracking import MlflowClient

    from tests.training.test_runs import log_run
    from tickstore.mlflow_store import REGISTERED_MODEL
    from training import tracking

    s = make_settings()
    assert complete("tickstore serve --model ", env_for(s)) == []  # nothing trained: nothing offered
    experiment = tracking.setup(s)
    older = log_run(experiment, "zscore", "honest", {"val_pr_auc": 0.2})
    newer = log_run(experiment, "logreg", "honest", {"val_pr_auc": 0.3})
    client = MlflowClient()
    client.create_registered_model(REGISTERED_MODEL)
    version = client.create_model_version(REGISTERED_MODEL, f"runs:/{older}/model", run_id=older)
    client.set_registered_model_alias(REGISTERED_MODEL, "champion", version.version)

    assert complete("tickstore serve --model ", env_for(s)) == [
        f"models:/{REGISTERED_MODEL}@champion",
        f"runs:/{newer}/model",
        f"runs:/{older}/model",
    ]
    assert complete(f"tickstore serve --model runs:/{newer[:6]}", env_for(s)) == [f"runs:/{newer}/model"]
    # in bash, after the `:` it cuts the word at
    assert bash_offers(f"tickstore serve --model runs:/{newer[:6]}", env=env_for(s)) == [f"/{newer}/model"]
    # a tracking server is not asked (one that is down would hold the Tab through MLflow's retries)
    served = {**env_for(s), "TICKSTORE_MLFLOW_URI": "http://127.0.0.1:9"}
    assert complete("tickstore serve --model ", served) == []


def test_as_of_completes_the_lakes_newest_snapshots_with_when_each_was_taken(
    make_settings: Callable[..., Settings],
) -> None:
    from tickstore import lake

    s = seeded(make_settings)
    con = lake.connect(s, read_only=True)
    taken = con.execute(
        "SELECT snapshot_id, snapshot_time FROM ducklake_snapshots('lake') ORDER BY 1 DESC"
    ).fetchall()
    con.close()
    newest_first = [str(i) for i, _ in taken][:20]
    assert len(newest_first) >= 3
    for command in ("sql", "dataset build", "train"):
        assert complete(f"tickstore {command} --as-of ", env_for(s)) == newest_first
    assert complete(f"tickstore sql --as-of {newest_first[0]}", env_for(s))[0] == newest_first[0]
    assert complete("tickstore sql --as-of 2025-12", env_for(s)) == []  # a time: typed, not completed
    # zsh shows when each was taken
    zsh = subprocess.run(
        [TICKSTORE],
        env={
            **env_for(s),
            "COMP_WORDS": "tickstore sql --as-of ",
            "COMP_CWORD": "3",
            "_TICKSTORE_COMPLETE": "zsh_complete",
        },
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()
    when = taken[0][1].astimezone(UTC)
    assert zsh[:3] == ["plain", newest_first[0], f"taken {when:%Y-%m-%d %H:%M:%S} UTC"]
    nowhere = {**env_for(s), "TICKSTORE_HOME": str(s.home.parent / "no-lake-here")}
    assert complete("tickstore sql --as-of ", nowhere) == []


def answer(shell: str, words: str) -> list[str]:
    """The completion script's raw answer (type and value, per shell) for the last of ``words``, asked
    as ``shell``'s script asks (zsh and bash: the word's place; fish: the word itself)."""
    last = words.split(" ")[-1]
    cword = last if shell == "fish" else str(len(words.split(" ")) - 1)
    asked = {
        **os.environ,
        "COMP_WORDS": words,
        "COMP_CWORD": cword,
        "_TICKSTORE_COMPLETE": f"{shell}_complete",
    }
    run = subprocess.run([TICKSTORE], env=asked, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_root_options_complete_after_the_command_where_they_are_read() -> None:
    # a path after --home, as before the command: the shell's own file completion
    assert answer("bash", "tickstore --home /tm") == ["file,/tm"]
    for words in ("tickstore status --home /tm", "tickstore status --home=/tm", "tickstore feast --home /tm"):
        assert answer("bash", words) == ["file,/tm"], words
    assert answer("zsh", "tickstore dataset build --home /tm") == ["file", "/tm", "_"]
    assert answer("fish", "tickstore status --home /tm") == ["file,/tm"]
    # their names among the command's own, but not one given already, nor -v where Feast's CLI reads it
    assert complete("tickstore status --h") == ["--help", "--home"]
    assert complete("tickstore status -") == ["-h", "--help", "--home", "-v", "--verbose"]
    assert complete("tickstore status -v --home d -") == ["-h", "--help"]
    assert complete("tickstore --home d status --") == ["--help", "--verbose"]
    assert complete("tickstore feast apply -") == ["--home"]
    # what follows `--` is the command's own
    assert complete("tickstore sql -- --h") == []
    assert complete("tickstore da") == ["dataset"]
