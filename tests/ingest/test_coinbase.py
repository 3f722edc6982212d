"""The live Coinbase ingest against a local WebSocket server that plays recorded messages.

The server drops the first connection mid-stream and goes silent on the second, so the client must
reconnect (with backoff), subscribe again each time, archive every message and publish it to Kafka.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from ingest import coinbase, replay
from ingest.sink import Sink
from tests.cli.helpers import tickstore
from tests.conftest import SHARED, free_port
from tests.ingest.helpers import query, reference_ticks, write_protected
from tickstore.settings import Settings

pytestmark = pytest.mark.kafka

RECORDING = SHARED / "advanced_trade" / "btc-usd_2026-04-05.ndjson"


class FlakyFeed:
    """Serves ``lines`` over three connections: abort after 2000, silence after 1000 more, then the rest."""

    def __init__(self, lines: list[bytes]) -> None:
        self.lines = lines
        self.sent = 0
        self.subscribes: list[list[dict]] = []

    async def handler(self, ws: ServerConnection) -> None:
        connection = len(self.subscribes)
        self.subscribes.append([json.loads(await ws.recv()), json.loads(await ws.recv())])
        stop_at = {0: 2000, 1: 3000}.get(connection, len(self.lines))
        while self.sent < stop_at:
            await ws.send(self.lines[self.sent].decode())
            self.sent += 1
        if connection == 0:
            ws.transport.abort()  # a dropped TCP connection, no close handshake
        else:  # connection 1 goes silent: the client must notice and reconnect
            await ws.wait_closed()


@pytest.mark.slow
def test_live_ingest_survives_drops_and_silence_archives_everything(kafka_settings: Settings) -> None:
    s = kafka_settings.model_copy(update={"coinbase_stale_s": 1.0, "archive_rotate_mb": 0.5})
    lines = RECORDING.read_bytes().splitlines()
    feed = FlakyFeed(lines)
    port = free_port()

    async def scenario() -> coinbase.LiveStats:
        async with serve(feed.handler, "127.0.0.1", port):
            session = coinbase.CoinbaseIngest(
                s, "advanced-trade", ["BTC-USD"], url=f"ws://127.0.0.1:{port}", max_messages=len(lines)
            )
            return await asyncio.wait_for(session.run_async(), timeout=120)

    stats = asyncio.run(scenario())
    assert stats.messages == len(lines) and stats.connections == 3
    # subscribed again on every connection, tickers and heartbeats
    assert len(feed.subscribes) == 3
    for subs in feed.subscribes:
        assert {m.get("channel") for m in subs} == {"ticker", "heartbeats"}
        assert subs[0]["product_ids"] == ["BTC-USD"]
    # the archive holds every raw message, byte for byte, in rotated files
    archived = [line for _, _, line in replay.iter_lines([Path(f) for f in stats.archive_files])]
    assert archived == lines and len(stats.archive_files) > 1

    # Kafka got them all: the lake has exactly the recording's ticks
    Sink(s, until_idle=True).run()
    expected = reference_ticks([RECORDING])
    assert dict(query(s, "SELECT product_id, count(*) FROM ticks GROUP BY ALL")) == expected
    # and replaying the archive adds nothing: same ticks, same keys
    replay.replay(s, [s.archive_dir])
    again = Sink(s, until_idle=True).run()
    assert again.total.ticks == 0 and again.total.duplicates == sum(expected.values())


def test_subscriptions_per_feed() -> None:
    [ex] = coinbase.subscriptions("exchange", ["BTC-USD"])
    assert ex["channels"] == ["ticker", "heartbeat"]
    with pytest.raises(ValueError, match="unknown feed"):
        coinbase.subscriptions("fix", ["BTC-USD"])


def test_backoff_grows_caps_and_resets() -> None:
    b = coinbase.Backoff(initial=1.0, cap=8.0)
    delays = [b.next_delay() for _ in range(6)]
    assert all(0.5 * min(8.0, 2**i) <= d <= min(8.0, 2**i) for i, d in enumerate(delays))
    b.reset()
    assert b.next_delay() <= 1.0


def test_a_feed_that_never_answers_is_called_unreachable_not_lost(
    kafka_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"ws://127.0.0.1:{free_port()}"  # nothing listens: as with no internet access at all
    session = coinbase.CoinbaseIngest(kafka_settings, "advanced-trade", ["BTC-USD"], url=url, duration_s=1.5)
    stats = session.run()
    assert stats.connections == 0 and stats.messages == 0
    warnings = [r.getMessage() for r in caplog.records if r.name.endswith("coinbase")]
    assert any(f"cannot connect to {url}" in w and "internet access" in w for w in warnings), warnings
    assert not any("lost" in w for w in warnings)  # "connection lost" when there never was one
    # the command fails, so a script does not go on to sink and query nothing (it ended 0)
    run = tickstore(kafka_settings, "ingest", "coinbase", "--url", url, "--duration", "1.5", check=False)
    said = " ".join(run.stderr.split())
    assert run.returncode == 1 and f"Error: never connected to {url}, so nothing was received" in said, said
    assert "tickstore ingest replay ../shared/data/coinbase" in said and "Traceback" not in said
    # a URL that is no WebSocket URL is refused at once: it was retried for ever, as if offline
    for given in ("notaurl", "https://ws-feed.exchange.coinbase.com", "wss://"):
        run = tickstore(kafka_settings, "ingest", "coinbase", "--url", given, check=False)
        assert run.returncode == 2 and f"{given!r} is not a WebSocket URL" in run.stderr, run.stderr


def test_duration_and_a_stop_end_a_connection_attempt_that_hangs(kafka_settings: Settings) -> None:
    """--duration and Ctrl-C end the session on time while a handshake goes unanswered.

    The WebSocket client waits up to 10 s for a handshake; the session waited it out past both.
    """
    with socket.socket() as silent:  # takes TCP connections (the kernel's backlog), answers nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}"
        session = coinbase.CoinbaseIngest(
            kafka_settings, "advanced-trade", ["BTC-USD"], url=url, duration_s=1.5
        )
        started = time.monotonic()
        stats = session.run()
        assert time.monotonic() - started < 6.0 and stats.connections == 0  # it waited out 10 s

        session = coinbase.CoinbaseIngest(kafka_settings, "advanced-trade", ["BTC-USD"], url=url)

        async def stop_soon() -> coinbase.LiveStats:
            asyncio.get_running_loop().call_later(1.0, session.stop)
            return await session.run_async()

        started = time.monotonic()
        stats = asyncio.run(stop_soon())
        assert time.monotonic() - started < 6.0 and stats.connections == 0  # it waited out 10 s


def test_duration_is_not_overrun_by_a_backoff_delay(kafka_settings: Settings) -> None:
    """A retry delay longer than what is left of --duration is cut to it (it ran a whole delay over)."""
    url = f"ws://127.0.0.1:{free_port()}"  # refused at once, so the session is all backoff
    session = coinbase.CoinbaseIngest(kafka_settings, "advanced-trade", ["BTC-USD"], url=url, duration_s=2.0)
    session.backoff = coinbase.Backoff(initial=16.0)  # the first delay alone, 8-16 s, is past the end
    started = time.monotonic()
    stats = session.run()
    assert time.monotonic() - started < 5.0 and stats.connections == 0


class SteadyFeed:
    """Serves ``lines`` once over one connection, then keeps it open."""

    def __init__(self, lines: list[bytes]) -> None:
        self.lines = lines
        self.connections = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        await ws.recv(), await ws.recv()  # the two subscriptions
        for line in self.lines:
            await ws.send(line.decode())
        await ws.wait_closed()


def test_an_archive_that_cannot_write_does_not_stop_the_feed_reaching_kafka(
    kafka_settings: Settings, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    lines = RECORDING.read_bytes().splitlines()[:500]
    feed = SteadyFeed(lines)
    port = free_port()
    kafka_settings.archive_dir.mkdir(parents=True)

    async def scenario() -> coinbase.LiveStats:
        async with serve(feed.handler, "127.0.0.1", port):
            session = coinbase.CoinbaseIngest(
                kafka_settings,
                "advanced-trade",
                ["BTC-USD"],
                url=f"ws://127.0.0.1:{port}",
                max_messages=len(lines),
            )
            return await asyncio.wait_for(session.run_async(), timeout=60)

    # the archive's folder refuses new files, as a full disk would
    with write_protected(kafka_settings.archive_dir):
        stats = asyncio.run(scenario())
    # no reconnecting to the feed over a local disk: one connection, every message published
    assert (stats.messages, stats.connections, feed.connections) == (len(lines), 1, 1)
    assert stats.archive_missed == len(lines) and stats.archive_files == []
    assert stats.archive_problem is not None and "may not write there" in stats.archive_problem
    assert not [r for r in caplog.records if "lost" in r.getMessage()]

    Sink(kafka_settings, until_idle=True).run()
    sent = tmp_path / "sent.ndjson"
    sent.write_bytes(b"\n".join(lines) + b"\n")
    expected = reference_ticks([sent])
    assert dict(query(kafka_settings, "SELECT product_id, count(*) FROM ticks GROUP BY ALL")) == expected
