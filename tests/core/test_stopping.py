"""`tickstore.stopping`: Ctrl-C and SIGTERM stop the work, even when they land in a finalizer."""

from __future__ import annotations

import subprocess
import sys

import pytest

# An object whose finalizer is running when the signal's handler runs: Python "ignores" the
# exception raised there and goes on
SCRIPT = """
import signal, sys, time
from tickstore import stopping

class Finalized:
    def __del__(self):
        signal.raise_signal(getattr(signal, sys.argv[1]))
        for _ in range(100):  # the handler runs at one of these steps, inside the finalizer
            pass

def work():
    Finalized()  # freed at once
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # work that goes on
        pass
    print("ran on")

try:
    if sys.argv[2] == "on":
        with stopping.stops_on_signals():
            work()
    else:
        work()
except KeyboardInterrupt as exc:
    print("stopped by", type(exc).__name__)
"""


def _run(signal_name: str, mode: str, *, sigint_ignored: bool = False) -> subprocess.CompletedProcess[str]:
    prelude = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\n" if sigint_ignored else ""
    # SIGINT as a terminal gives it, whatever this test's own parent set
    prelude = prelude or "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + SCRIPT, signal_name, mode],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_python_alone_loses_a_ctrl_c_that_lands_in_a_finalizer() -> None:
    """The premise: without `stops_on_signals` the work goes on after the Ctrl-C."""
    run = _run("SIGINT", "off")
    assert run.stdout.strip() == "ran on" and "Exception ignored" in run.stderr, run


@pytest.mark.parametrize(("name", "raised"), [("SIGINT", "KeyboardInterrupt"), ("SIGTERM", "Terminated")])
def test_a_stop_landing_in_a_finalizer_is_raised_again_in_the_work(name: str, raised: str) -> None:
    run = _run(name, "on")
    assert run.stdout.strip() == f"stopped by {raised}", run
    assert "Exception ignored" not in run.stderr, run.stderr


def test_sigint_the_process_was_started_ignoring_stays_ignored() -> None:
    # a script's `cmd &` starts it so: its shell meant Ctrl-C not to reach it
    assert _run("SIGINT", "on", sigint_ignored=True).stdout.strip() == "ran on"


def test_check_raises_a_stop_that_was_swallowed_and_handlers_are_put_back() -> None:
    script = """
import signal
from tickstore import stopping
before = signal.getsignal(signal.SIGTERM)
with stopping.stops_on_signals():
    try:
        signal.raise_signal(signal.SIGTERM)
        for _ in range(100):
            pass
    except BaseException:  # as a library that catches too much would
        pass
    try:
        stopping.check()
    except stopping.Terminated:
        print("checked")
stopping.check()  # outside: nothing asked
print(signal.getsignal(signal.SIGTERM) == before)
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.stdout.split() == ["checked", "True"], run


def test_a_stop_in_a_held_section_comes_as_it_ends_and_nested_sections_hold_to_the_outermost() -> None:
    script = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal gives it, whatever CI set
from tickstore import stopping
done = []
with stopping.stops_on_signals():
    try:
        with stopping.held():
            with stopping.held():
                signal.raise_signal(signal.SIGINT)
                for _ in range(1000):
                    pass
                done.append("inner")
            done.append("outer")
        done.append("after")
    except KeyboardInterrupt:
        done.append("stopped")
    try:  # a section that fails goes on with its own error, the stop taken with it
        with stopping.held():
            signal.raise_signal(signal.SIGTERM)
            raise ValueError("its own")
    except ValueError:
        done.append("its own error")
    with stopping.held():
        pass
    done.append("next section clear")
print(" ".join(done))
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.stdout.split() == [
        "inner",
        "outer",
        "stopped",
        "its",
        "own",
        "error",
        "next",
        "section",
        "clear",
    ], run


def test_signals_wait_for_the_block_then_reach_the_handler_that_was_set() -> None:
    script = """
import os, signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal gives it, whatever CI set
from tickstore import stopping
done = []
before = signal.getsignal(signal.SIGINT)
try:
    with stopping.signals_wait():
        signal.raise_signal(signal.SIGINT)
        for _ in range(1000):  # Python steps, where the handler would have run
            pass
        done.append("block through")
    done.append("not stopped")
except KeyboardInterrupt:
    done.append("stopped after it")
try:  # a block that fails: the stop still comes, its error the context
    with stopping.signals_wait():
        signal.raise_signal(signal.SIGINT)
        raise ValueError("its own")
except KeyboardInterrupt as exc:
    done.append("stopped, context " + type(exc.__context__).__name__)
print(" ".join(done), signal.getsignal(signal.SIGINT) == before)
with stopping.signals_wait():
    os.kill(os.getpid(), signal.SIGTERM)  # SIGTERM's default: the process ends, once the block is through
    print("block through", flush=True)
print("never")
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.stdout.splitlines() == [
        "block through stopped after it stopped, context ValueError True",
        "block through",
    ], run
    assert run.returncode == -15, run
