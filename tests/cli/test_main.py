"""cli/main.py's process-wide parts: how a `tickstore` process reads its words, writes and exits."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a new Python in the source tree, with ``env`` added; it must succeed."""
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return run


def test_exit_skips_collecting_what_the_command_left_alive() -> None:
    # a handler registered before cli.main runs after cli.main's (exit handlers run last-in first-out):
    # by then every object alive is frozen, out of reach of the exit's cycle collection (~1.3 s after
    # Feast and MLflow were imported). Exit handlers themselves still run, this one among them.
    code = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, flush=True))\n"
        "import cli.main\n"
    )
    run = python(code)
    assert run.stdout.strip() == "frozen True"


def test_log_lines_write_control_characters_out() -> None:
    # a stream's "skipped ...: <error>" can quote a message from the broker: its ESC acted on the terminal
    code = (
        "import logging, cli.main\n"
        "logging.basicConfig(handlers=[cli.main._log_handler()], format='%(message)s')\n"
        "logging.getLogger('x').warning('skipped %s: %s', 'ticks.raw[0]@3', 'bad \\x1b[2J\\r value')\n"
    )
    run = python(code)
    assert "skipped ticks.raw[0]@3: bad \\x1b[2J\\x0d value" in run.stderr and "\x1b" not in run.stderr


def test_output_in_an_encoding_short_of_a_value_s_characters_escapes_them() -> None:
    # `tickstore sql "SELECT '→é'"` with PYTHONIOENCODING=ascii died of a UnicodeEncodeError
    code = (
        "import cli.main\n"
        "from cli.context import console, report\n"
        "report.print('BTC-USD \u2192 \xe9')\n"
        "console.print('skipped: caf\xe9')\n"
    )
    run = python(code, PYTHONIOENCODING="ascii")
    assert run.stdout.strip() == "BTC-USD \\u2192 \\xe9"
    assert run.stderr.strip() == "skipped: caf\\xe9"
