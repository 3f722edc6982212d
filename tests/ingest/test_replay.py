"""Replaying recordings: every readable line of a damaged one is published and the damage reported; pacing."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest import replay
from tests.cli.helpers import tickstore
from tests.conftest import SHARED
from tests.ingest.helpers import query, reference_ticks
from tickstore.settings import Settings

RECORDING = SHARED / "advanced_trade" / "btc-usd_20251206_011247.ndjson"


def cut_gzip(tmp_path: Path, share: float) -> Path:
    """The recording gzipped, then cut off after ``share`` of its compressed bytes (an interrupted copy)."""
    whole = gzip.compress(RECORDING.read_bytes())
    path = tmp_path / "cut.ndjson.gz"
    path.write_bytes(whole[: int(len(whole) * share)])
    return path


def test_a_cut_off_gzip_raises_after_its_last_readable_line_or_is_noted(tmp_path: Path) -> None:
    cut = cut_gzip(tmp_path, 0.5)
    lines = RECORDING.read_bytes().splitlines()
    read: list[bytes] = []
    with pytest.raises(replay.DamagedRecording, match=r"cut.ndjson.gz: the compressed data ends early"):
        read.extend(line for _, _, line in replay.iter_lines([cut]))
    assert 0 < len(read) < len(lines) and read == lines[: len(read)]  # a prefix, in order

    damaged: list[str] = []
    both = [line for _, _, line in replay.iter_lines([cut, RECORDING], damaged)]
    assert both == read + lines  # the next file is read whole
    assert damaged == [
        f"{cut}: the compressed data ends early (a cut-off file); {len(read):,} lines read before it"
    ]


def test_a_gz_name_on_a_plain_file_is_named_as_not_gzip(tmp_path: Path) -> None:
    fake = tmp_path / "plain.ndjson.gz"
    fake.write_bytes(RECORDING.read_bytes()[:1000])
    with pytest.raises(replay.DamagedRecording, match="plain.ndjson.gz: not a gzip file; 0 lines read"):
        list(replay.iter_lines([fake]))


def test_replay_with_no_recordings_says_so(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    run = tickstore(make_settings(), "ingest", "replay", str(tmp_path), check=False)
    assert run.returncode == 1 and f"no .ndjson or .jsonl files (gzipped or not) in {tmp_path}" in run.stderr


@pytest.mark.kafka
def test_replaying_a_cut_off_recording_lands_every_readable_line(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    cut = cut_gzip(tmp_path, 0.3)
    readable = tmp_path / "readable.ndjson"
    damaged: list[str] = []
    readable.write_bytes(b"".join(line + b"\n" for _, _, line in replay.iter_lines([cut], damaged)))
    assert len(damaged) == 1

    run = tickstore(kafka_settings, "ingest", "replay", str(cut), check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert "the compressed data ends early" in run.stderr and str(cut) in run.stderr
    tickstore(kafka_settings, "sink", "--until-idle")
    counts = dict(query(kafka_settings, "SELECT product_id, count(*) FROM ticks GROUP BY ALL"))
    assert counts == reference_ticks([readable]) and sum(counts.values()) > 0


def test_folders_yield_ndjson_and_jsonl_recordings_gzipped_or_not(tmp_path: Path) -> None:
    for name in ("a.ndjson", "b.jsonl", "c.jsonl.gz", "d.ndjson.gz", "notes.txt", "e.json"):
        (tmp_path / "rec" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "rec" / name).write_bytes(b"")
    # .jsonl, the other common name for JSON lines, was passed over in a folder
    assert [p.name for p in replay.discover([tmp_path / "rec"])] == [
        "a.ndjson",
        "b.jsonl",
        "c.jsonl.gz",
        "d.ndjson.gz",
    ]


def test_a_byte_order_mark_and_windows_line_ends_are_not_part_of_the_messages(tmp_path: Path) -> None:
    path = tmp_path / "saved-on-windows.ndjson"
    path.write_bytes(b'\xef\xbb\xbf{"type":"ticker"}\r\n{"type":"heartbeat"}\r\n')
    # the first message began with the mark: invalid JSON, rejected by the sink
    assert [line for _, _, line in replay.iter_lines([path])] == [
        b'{"type":"ticker"}',
        b'{"type":"heartbeat"}',
    ]


def test_a_named_file_that_is_no_json_lines_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    # README.md replayed by mistake went to ticks.raw line by line: 761 messages for the sink to reject
    for name, text in (("README.md", b"# tickstore\n\nA feature store\n"), ("ticks.csv", b"\n a,b\n1,2\n")):
        (tmp_path / name).write_bytes(text)
        with pytest.raises(
            replay.TickstoreError, match=rf"{name} is not a recording: its first line is not a JSON"
        ):
            replay.discover([tmp_path / name])
    (tmp_path / "x.csv.gz").write_bytes(gzip.compress(b"a,b\n"))
    with pytest.raises(replay.TickstoreError, match=r"first line is not a JSON object \('a,b'\)"):
        replay.discover([tmp_path / "x.csv.gz"])
    # JSON lines under another name, with a mark and a blank line first, go ahead
    (tmp_path / "feed.log").write_bytes(b'\xef\xbb\xbf\n  {"type":"ticker"}\n')
    assert replay.discover([tmp_path / "feed.log"]) == [tmp_path / "feed.log"]
    # a recording's name is trusted: a first line cut short or garbled is the sink's to reject (and keep)
    (tmp_path / "rec.ndjson").write_bytes(b'ype":"ticker"}\n{"type":"ticker"}\n')
    assert replay.discover([tmp_path / "rec.ndjson"]) == [tmp_path / "rec.ndjson"]


def test_a_slow_pace_stops_at_the_deadline_and_a_pause_never_overflows_sleep() -> None:
    import time

    from ingest.replay import Pacer

    # --speed 0.001 --duration 3 ran 34 s (a recorded gap of 34 ms, paced 1000x slower, slept whole);
    # --speed 1e-308 made a pause time.sleep refused (OverflowError: timestamp out of range)
    pacer = Pacer(speed=1e-308, max_gap_s=5.0)
    assert pacer.wait(0.0)
    started = time.monotonic()
    assert not pacer.wait(1.0, until=started + 0.2)
    assert 0.2 <= time.monotonic() - started < 2.0
    # a gap longer than --max-gap is shortened to it; a message without a time waits for nothing
    pacer = Pacer(speed=1.0, max_gap_s=0.1)
    pacer.wait(0.0)
    started = time.monotonic()
    assert pacer.wait(3600.0, until=started + 60) and pacer.wait(None, until=started)
    assert 0.1 <= time.monotonic() - started < 2.0
