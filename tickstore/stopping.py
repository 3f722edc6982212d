"""Ctrl-C and SIGTERM as a stop that is never lost, for work that must clean up after itself.

Python raises a signal's exception wherever the main thread runs Python code next, a finalizer
included (a weakref callback, a ``__del__``): there it is "ignored", a note goes to stderr, and the
work goes on. A `tickstore train` whose Ctrl-C landed in a ``WeakKeyDictionary``'s callback while it
logged the models' scores ran to its end and exited 0 (1 of 12 probes signalled at random moments
of that stretch; 3 of 8 in an earlier test). Here such a stop is raised again at the main thread's
next step, and SIGTERM (`kill`) stops the work the way Ctrl-C does, so that one clean-up serves both.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_asked: list[int] = []  # the signals received while `stops_on_signals` is on, newest last
_held = 0  # how deep in `held` sections the main thread is
_deferred: list[int] = []  # the stops that came during a held section, raised as it ends
_on = False  # whether `stops_on_signals` is on (in the main thread)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C is: every handler of KeyboardInterrupt cleans up for it too."""


def _raise(signum: int, frame: FrameType | None) -> None:
    _asked.append(signum)
    if _held:
        _deferred.append(signum)
    else:
        raise _stop(signum)


def _stop(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _again(signum: int) -> None:
    """As if signal ``signum`` came again in a moment: its handler raises at the main thread's next
    step then (should that be another finalizer, the hook comes round once more).

    From another thread: tripped here, the handler would run inside the hook, whose own exception
    Python ignores as well.
    """
    timer = threading.Timer(0.005, _thread.interrupt_main, args=(signum,))
    timer.daemon = True
    timer.start()


def _keeping_stops(hook: Callable[[Any], object]) -> Callable[[Any], None]:
    """``sys.unraisablehook`` that raises a stop a finalizer swallowed again, in the main thread."""

    def handle(unraisable: Any) -> None:
        try:
            if _asked and isinstance(unraisable.exc_value, KeyboardInterrupt):
                _again(_asked[-1])  # and no "Exception ignored" note: the stop is not ignored
                return
            hook(unraisable)
        except KeyboardInterrupt:  # a signal landing in the hook itself
            _again(_asked[-1] if _asked else signal.SIGINT)

    return handle


@contextmanager
def stops_on_signals() -> Iterator[None]:
    """While inside, Ctrl-C raises KeyboardInterrupt and SIGTERM :class:`Terminated`, never lost.

    A signal the process was started ignoring stays ignored: a job a script starts with `&` has
    SIGINT ignored, and its shell meant it. Only the main thread gets signals: elsewhere (the demo
    and tests run work in threads) this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, _raise)
    hook = sys.unraisablehook
    sys.unraisablehook = _keeping_stops(hook)
    global _on
    _on = True
    try:
        yield
    finally:
        _on = False
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = hook
        _asked.clear()
        _deferred.clear()


def remember(signum: int) -> None:
    """Note a stop that a loop's own handler took to end its loop politely (the sink's, the stream's),
    so that the work around the loop stops too at its next `check`: the demo's step 3 ended its sink on
    Ctrl-C and went on to the steps after it. Outside `stops_on_signals`, nothing."""
    if _on:
        _asked.append(signum)


@contextmanager
def held() -> Iterator[None]:
    """While inside, a stop waits for the section's end: for writes a stop must not cut in two.

    A Ctrl-C inside an MLflow call left its SQLite transaction open: `train` could then not mark its
    runs KILLED ("database is locked"), and said it had. Outside `stops_on_signals` this changes nothing.
    """
    global _held
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        # raised once the outermost section is through; one that fails goes on with its own error
        came = _deferred[-1:] if not _held else []
        if not _held:
            _deferred.clear()
    if came:
        raise _stop(came[0])


def check() -> None:
    """Raise the stop a signal asked for, if one came: for a step that must not run after one
    (whatever swallowed it), such as promoting a model."""
    if _asked:
        raise _stop(_asked[-1])


@contextmanager
def signals_wait() -> Iterator[None]:
    """While inside, Ctrl-C and SIGTERM wait, whatever their handlers, and come as the block ends.

    For C code that runs Python as it works and takes any exception raised there for a failure of
    its own: confluent-kafka's client, reading its configuration, said a Ctrl-C or `kill` landing
    in those 2 ms was a bad property ("expected configuration property name as type unicode
    string"), and the stop was lost (4 of 1,000 timed signals; the demo's CI run ended as a
    configuration error). Here the signal is only noted, then given again to the handler that was
    set, once the block is through or has failed. Only the main thread sets handlers: elsewhere,
    nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not None:  # None: a handler set outside Python, left alone
            previous[sig] = signal.signal(sig, lambda signum, frame: came.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(came):  # the first whose handler raises ends the loop
            signal.raise_signal(signum)
