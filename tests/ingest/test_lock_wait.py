"""One batch's wait for a lake catalog another process holds locked (the sink's own test takes a real
lock; these take the limits, which a real lock would need minutes to reach)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import duckdb
import pytest

from ingest.sink import lock_wait
from ingest.sink.lock_wait import LockWait, StoppedMidBatch
from tickstore.lake import LakeError

LOCKED = duckdb.IOException("database is locked")


def test_a_lock_is_waited_for_up_to_its_limit_then_given_up_saying_nothing_was_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(lock_wait, "LOCK_WAIT_S", 1.0)
    monkeypatch.setattr(lock_wait, "LOCK_SAY_S", 0.5)
    caplog.set_level(logging.DEBUG, logger="tickstore.sink")
    wait = LockWait(tmp_path / "catalog.sqlite")
    wait.locked(LOCKED, 1, stopping=False)  # another writer's commit: waited for, a debug line
    time.sleep(0.6)
    wait.locked(LOCKED, 2, stopping=False)
    wait.locked(LOCKED, 3, stopping=False)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # said once past LOCK_SAY_S, naming the catalog; the next time a minute on
    assert len(said) == 1 and f"{tmp_path / 'catalog.sqlite'} has been locked" in said[0], said
    time.sleep(0.5)
    with pytest.raises(
        LakeError, match=r"stayed locked for 1 s.*restarting the sink resumes from this batch"
    ):
        wait.locked(LOCKED, 4, stopping=False)


def test_once_stopping_a_lock_is_waited_for_only_a_few_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lock_wait, "STOP_LOCK_WAIT_S", 0.3)
    wait = LockWait(tmp_path / "catalog.sqlite")
    wait.locked(LOCKED, 1, stopping=True)  # a commit of another writer is still waited out
    time.sleep(0.4)
    wait.locked(LOCKED, 2, stopping=False)  # not stopping: the wait goes on
    with pytest.raises(StoppedMidBatch) as stopped:
        wait.locked(LOCKED, 3, stopping=True)
    assert (
        stopped.value.why == f"the lake catalog {tmp_path / 'catalog.sqlite'} was locked by another process"
    )
    # each batch waits afresh
    LockWait(tmp_path / "catalog.sqlite").locked(LOCKED, 1, stopping=True)
