"""`tickstore broker` and what `tickstore status` says of the broker: topics, partitions, readers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest import kafka
from tests.cli.helpers import spawn_sink, tickstore
from tests.conftest import free_port
from tickstore.settings import Settings


def test_a_stale_pid_file_naming_another_process_leaves_that_process_alone(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(broker_port=free_port())
    s.run_dir.mkdir(parents=True)
    # a broker killed with -9 (or gone with a reboot) leaves its pid file; the number is taken since
    other = subprocess.Popen(["sleep", "60"])
    try:
        (s.run_dir / "broker.pid").write_text(str(other.pid))
        stopped = tickstore(s, "broker", "stop")
        assert "no embedded broker was running" in stopped.stderr, stopped.stderr
        assert other.poll() is None  # SIGTERM'd, then SIGKILL'd after 10 s
        down = tickstore(s, "broker", "status", check=False).stdout
        assert "down" in down and f"pid {other.pid}" not in down, down
        tickstore(s, "broker", "start")
        assert int((s.run_dir / "broker.pid").read_text()) != other.pid
        tickstore(s, "broker", "stop")
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.kafka
def test_broker_start_status_stop(make_settings: Callable[..., Settings]) -> None:
    s = make_settings(broker_port=free_port())
    started = tickstore(s, "broker", "start")
    assert "embedded broker" in started.stderr
    pid = int((s.run_dir / "broker.pid").read_text())
    status = tickstore(s, "broker", "status")
    assert "up" in status.stdout and s.topic_raw in status.stdout  # the answer, on stdout for pipes
    assert "already" not in tickstore(s, "broker", "start").stderr  # idempotent start
    assert int((s.run_dir / "broker.pid").read_text()) == pid
    tickstore(s, "broker", "stop")
    assert not (s.run_dir / "broker.pid").exists()
    assert tickstore(s, "broker", "status", check=False).returncode == 1


@pytest.mark.kafka
def test_broker_status_names_the_other_home_whose_broker_answers(
    make_settings: Callable[..., Settings], broker_port: int
) -> None:
    """A second home on the first home's embedded broker shares its topics and groups: `status` said only "up"."""
    s = make_settings(broker_port=broker_port)  # the session's broker, started for a home of its own
    kafka.ensure_topics(s)
    told = " ".join(tickstore(s, "broker", "status").stdout.split())
    assert (
        f"embedded broker at 127.0.0.1:{broker_port}: up, the embedded broker of another tickstore home"
        in told
    )
    assert "its topics and consumer groups are that home's too; TICKSTORE_BROKER_PORT" in told, told

    own = make_settings(broker_port=free_port())
    tickstore(own, "broker", "start")
    pid = int((own.run_dir / "broker.pid").read_text())
    try:
        assert "another" not in tickstore(own, "broker", "status").stdout
        (own.run_dir / "broker.pid").unlink()  # still this home's broker, as its log says
        told = " ".join(tickstore(own, "broker", "status").stdout.split())
        assert f"127.0.0.1:{own.broker_port}: up" in told and "another" not in told, told
    finally:
        os.kill(pid, signal.SIGTERM)


@pytest.mark.kafka
def test_a_taken_broker_port_names_what_holds_it_and_how_to_stop_it(
    make_settings: Callable[..., Settings], broker_port: int, tmp_path: Path
) -> None:
    # the embedded broker of another home (the session's, started for a home of its own)
    other = tickstore(make_settings(broker_port=broker_port), "broker", "start", check=False)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert "embedded broker of another tickstore home" in other.stderr
    assert "tickstore broker stop" in other.stderr and "TICKSTORE_BROKER_PORT" in other.stderr

    # this home's own broker, after the home was removed while it ran
    s = make_settings(broker_port=free_port(), home=tmp_path / "removed")
    tickstore(s, "broker", "start")
    pid = int((s.run_dir / "broker.pid").read_text())
    try:
        shutil.rmtree(s.home)
        again = tickstore(s, "broker", "start", check=False)
        assert again.returncode == 1
        assert f"home ({s.home}) was removed" in again.stderr and f"kill {pid}" in again.stderr
    finally:
        os.kill(pid, signal.SIGTERM)

    # any other program
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        s = make_settings(broker_port=taken.getsockname()[1])
        third = tickstore(s, "broker", "start", check=False)
    assert third.returncode == 1 and f"taken by pid {os.getpid()} (" in third.stderr


@pytest.mark.kafka
def test_broker_status_says_when_a_partition_grew_too_big_for_the_embedded_broker(
    make_settings: Callable[..., Settings], broker_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import broker
    from ingest import kafka

    s = make_settings(broker_port=broker_port)
    kafka.ensure_topics(s)
    producer = kafka.producer(s, **kafka.LIVE)
    for _ in range(12):  # a live feed: a record batch a message, what Tansu's fetches read through
        producer.produce(s.topic_raw, value=b"{}", partition=0)
        producer.flush(10)
    _, lines = broker.broker_report(s)
    # Tansu's watermarks count record batches, and the topic's line says so
    assert f"  {s.topic_raw}: 3 partitions, ~12 record batches (from watermarks)" in lines, lines
    assert not any("in one partition" in line for line in lines), lines
    monkeypatch.setattr(broker, "SLOW_PARTITION_BATCHES", 12)
    _, lines = broker.broker_report(s)
    [hint] = [line for line in lines if "in one partition" in line]
    assert f"{s.topic_raw} holds ~12 record batches in one partition" in hint and "restart it" in hint


@pytest.mark.kafka
def test_broker_status_says_whether_the_sink_and_the_stream_run_and_how_far_behind_they_are(
    make_settings: Callable[..., Settings], broker_port: int
) -> None:
    from cli import broker
    from ingest import kafka

    s = make_settings(broker_port=broker_port)
    kafka.ensure_topics(s)
    producer = kafka.producer(s, **kafka.LIVE)

    def publish(n: int) -> None:
        for _ in range(n):  # one record batch each, as a live feed's (Tansu's watermarks count those)
            producer.produce(s.topic_raw, value=b"{}", partition=0)
            producer.flush(10)

    def readers() -> list[str]:
        return [line.strip() for line in broker.broker_report(s)[1] if "(group " in line]

    sink_line = f"sink (group {s.sink_group}): "
    publish(4)
    assert readers() == [
        sink_line + "not running, nothing read here yet (`tickstore sink`)",
        f"stream (group {s.stream_group}): not running, nothing read here yet (`tickstore stream`)",
    ]
    tickstore(s, "sink", "--until-idle")  # the four go to the dead-letter table, their offsets committed
    publish(3)
    assert readers()[0] == (
        sink_line + "[yellow]not running[/], ~3 record batches unread: the lake has only what it read "
        "(`tickstore sink`)"
    )
    sink = spawn_sink(s)
    try:
        deadline = time.monotonic() + 60
        while (line := readers()[0]) != sink_line + "[green]running[/], caught up":
            assert sink.poll() is None and time.monotonic() < deadline, line
            time.sleep(0.5)
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(30)
    assert readers()[0] == sink_line + "not running, caught up to its last commit"
