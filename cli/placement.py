"""Where the stream and the scorer run: CPU priority (niceness) and CPU affinity, every thread of a process."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import click

from tickstore.values import parse_cpus

T = TypeVar("T")


def yield_cpu(target: int) -> None:
    """Lower this process's CPU priority to niceness ``target`` at least, every thread of it.

    The stream's batches are CPU bursts (~35 ms of SQL each). On cores it shares with the scorer,
    at equal priority they pushed the scorer's p99 at 500 requests/s from ~4 to 13-17 ms; at nice 10
    it stayed at 6-8 ms and freshness did not suffer (the scorer leaves most of the CPU idle).
    Linux keeps a niceness per thread and a new thread inherits its creator's: the threads that
    imports already started (BLAS, allocators) are lowered one by one.
    """

    def lower(tid: int) -> None:
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)

    _each_thread(lower)


def niceness() -> int:
    """The lowest niceness among this process's threads: the priority its busiest part may run at."""
    values = _each_thread(lambda tid: os.getpriority(os.PRIO_PROCESS, tid))
    return min(values, default=os.getpriority(os.PRIO_PROCESS, 0))


def pin(spec: str, setting: str) -> None:
    """Run every thread of this process on the CPUs ``spec`` lists (taskset's syntax); "" leaves them be.

    Niceness decides who runs first, and that was not enough: with the stream's SQL on the same
    cores, the scorer's p99 stayed up at nice 19, under SCHED_IDLE and with a shorter scheduler slice;
    giving each its own cores brought it down (docs/decisions.md). Threads started
    later inherit their creator's CPUs, gunicorn's forked workers too. ``setting`` names where the
    list came from, for the error a wrong one gets.
    """
    cpus = parse_cpus(spec)
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        return
    allowed = os.sched_getaffinity(0)
    if not cpus <= allowed:
        raise click.ClickException(
            f"CPUs {spec} ({setting}): CPU {min(cpus - allowed)} is not one this process may run on; "
            f"it may use {format_cpus(allowed)}. Choose among those, or leave it unset."
        )
    _each_thread(lambda tid: os.sched_setaffinity(tid, cpus))


def cpu_option(value: str | None) -> str | None:
    """A ``--cpus`` value, checked like its setting: a typo fails before anything starts."""
    if value is not None:
        try:
            parse_cpus(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--cpus") from None
    return value


def cpus_in_use() -> str:
    """The CPUs this process's threads may run on, together, as a taskset list (`0-1`)."""
    if not hasattr(os, "sched_getaffinity"):
        return "any"
    cpus: set[int] = set().union(*_each_thread(os.sched_getaffinity))
    return format_cpus(cpus or os.sched_getaffinity(0))


def format_cpus(cpus: set[int] | frozenset[int]) -> str:
    """``{0, 2, 3}`` as `0,2-3`."""
    ordered = sorted(cpus)
    runs: list[list[int]] = []
    for c in ordered:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def _each_thread(call: Callable[[int], T]) -> list[T]:
    """``call(tid)`` for every thread of this process, skipping threads that end meanwhile."""
    results = []
    for tid in _threads():
        try:
            results.append(call(tid))
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
    return results


def _threads() -> list[int]:
    """This process's thread ids (Linux), or just the process itself elsewhere (0: the caller)."""
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]
