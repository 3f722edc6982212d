"""cli/main.py's process-wide parts: what happens when a `tickstore` process exits."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_exit_skips_collecting_what_the_command_left_alive() -> None:
    # a handler registered before cli.main runs after cli.main's (exit handlers run last-in first-out):
    # by then every object alive is frozen, out of reach of the exit's cycle collection (~1.3 s after
    # Feast and MLflow were imported). Exit handlers themselves still run, this one among them.
    code = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, flush=True))\n"
        "import cli.main\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "frozen True"


def test_bash_completes_commands_options_and_choices_as_the_readme_says() -> None:
    """The README's `_TICKSTORE_COMPLETE=bash_source`: the script, then the words it asks for."""
    import os
    from pathlib import Path

    tickstore = str(Path(sys.executable).with_name("tickstore"))  # the installed command: click names it so

    def complete(words: str) -> list[str]:
        env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - (words[-1] != " "))}
        env["_TICKSTORE_COMPLETE"] = "bash_complete"
        run = subprocess.run([tickstore], env=env, cwd=REPO, capture_output=True, text=True)
        return [line.split(",", 1)[1] for line in run.stdout.splitlines()]

    script = subprocess.run(
        [tickstore],
        env={**os.environ, "_TICKSTORE_COMPLETE": "bash_source"},
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout
    assert "complete -o nosort -F _tickstore_completion" in script
    assert complete("tickstore da") == ["dataset"]
    assert complete("tickstore sql --format ") == ["table", "csv", "json"]
    assert "--every" in complete("tickstore dataset build --")
