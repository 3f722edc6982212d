"""The raw archive when the machine refuses its writes: whole lines only, every miss counted, resumed."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from ingest import replay
from ingest.archive import ArchiveWriter
from tests.conftest import files_capped_at
from tests.ingest.helpers import write_protected


def message(i: int) -> bytes:
    """A 100-byte line (99 bytes and its newline), numbered."""
    return b'{"n": %5d, "pad": "%s"}' % (i, b"x" * 76)


def test_a_write_cut_short_leaves_no_half_line_and_only_that_message_is_missed(tmp_path: Path) -> None:
    assert len(message(0)) + 1 == 100
    writer = ArchiveWriter(tmp_path / "archive", "feed", rotate_bytes=1 << 20, rotate_s=3600, retry_s=0)
    with files_capped_at(1050):  # ten lines fit a file; the eleventh gets 50 of its 100 bytes
        kept = [writer.write(message(i)) for i in range(35)]
    writer.close()

    # each file took ten whole lines, then refused one: the next message went to a new file
    assert kept == ([True] * 10 + [False]) * 3 + [True] * 2
    assert writer.missed == 3
    assert [f.stat().st_size for f in writer.files] == [1000, 1000, 1000, 200]
    archived = [line for _, _, line in replay.iter_lines(writer.files)]
    assert archived == [message(i) for i in range(35) if i not in (10, 21, 32)]


def test_a_folder_that_refuses_files_pauses_the_archive_until_it_can_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    writer = ArchiveWriter(folder / "feed", "feed", rotate_bytes=1 << 20, rotate_s=3600, retry_s=2)
    with caplog.at_level(logging.WARNING, logger="tickstore.archive"), write_protected(folder):
        assert not any(writer.write(message(i)) for i in range(5))
    assert writer.missed == 5 and writer.files == []
    assert writer.problem is not None and "may not write there" in writer.problem
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "said once per pause, not once per message"
    assert "messages still go to Kafka" in errors[0].getMessage()

    # writable again, but within the pause: not tried yet (a full disk is not hammered per message)
    assert not writer.write(message(5))
    time.sleep(2)
    with caplog.at_level(logging.WARNING, logger="tickstore.archive"):
        assert writer.write(message(6)) and writer.write(message(7))
    writer.close()
    assert writer.missed == 6 and writer.problem is None
    assert "6 message(s) were not archived" in caplog.records[-1].getMessage()
    assert [line for _, _, line in replay.iter_lines(writer.files)] == [message(6), message(7)]
