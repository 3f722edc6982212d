"""The scoring server's log filters (`cli.serverlog`), on records as the workers' handlers see them."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from cli.serverlog import SaidOnce


def _record(message: str, name: str = "serving.model", level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_a_line_every_worker_says_is_let_through_once(tmp_path: Path) -> None:
    workers = [SaidOnce(tmp_path) for _ in range(4)]  # one filter a process, sharing the folder
    said = [w.filter(_record("serving: no model at models:/m@champion")) for w in workers]
    assert said == [True, False, False, False]
    # other lines, and the same words from another logger or at another level, are their own
    assert workers[1].filter(_record("serving: loaded models:/m@champion version 2"))
    assert workers[2].filter(_record("serving: no model at models:/m@champion", level=logging.ERROR))
    assert workers[3].filter(_record("serving: no model at models:/m@champion", name="serving.state"))


def test_a_line_said_again_after_the_window_is_said_again(tmp_path: Path) -> None:
    first, second = SaidOnce(tmp_path, window_s=60), SaidOnce(tmp_path, window_s=60)
    assert first.filter(_record("serving: cannot check the model"))
    assert not second.filter(_record("serving: cannot check the model"))
    (mark,) = tmp_path.iterdir()
    old = time.time() - 61
    os.utime(mark, (old, old))  # a minute on: the problem was mended and came back
    assert second.filter(_record("serving: cannot check the model"))
    assert not first.filter(_record("serving: cannot check the model"))


def test_debug_lines_are_all_said_and_mark_nothing(tmp_path: Path) -> None:
    worker = SaidOnce(tmp_path)
    assert all(worker.filter(_record("feast: registry refreshed", level=logging.DEBUG)) for _ in range(3))
    assert list(tmp_path.iterdir()) == []


def test_without_its_folder_every_line_is_said(tmp_path: Path) -> None:
    # another server on the same home started afresh and removed it: twice is better than never
    gone = SaidOnce(tmp_path / "removed")
    assert gone.filter(_record("serving: loaded m")) and gone.filter(_record("serving: loaded m"))
