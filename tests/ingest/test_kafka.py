"""Reaching the broker: a missing one is reported at once, with what to do, by every Kafka command."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from ingest import broker, kafka
from tests.conftest import SHARED, free_port
from tickstore.settings import Settings


def test_refused_ports_are_named_and_a_listener_is_enough() -> None:
    closed = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        open_port = listener.getsockname()[1]
        assert kafka._refused(f"127.0.0.1:{open_port}", 1.0) is None
        # any one server answering is enough, as for librdkafka; a protocol prefix is allowed
        assert kafka._refused(f"127.0.0.1:{closed}, PLAINTEXT://127.0.0.1:{open_port}", 1.0) is None
    assert kafka._refused(f"127.0.0.1:{closed}", 1.0) == f"127.0.0.1:{closed}: Connection refused"
    with pytest.raises(ValueError, match="is not HOST"):  # the settings refuse it first (tests/core)
        kafka._refused("127.0.0.1:notaport", 1.0)


def test_ensure_topics_without_a_broker_fails_at_once_saying_what_to_do(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(broker_port=free_port())
    started = time.perf_counter()
    with pytest.raises(kafka.BrokerUnreachable, match="tickstore broker start"):
        kafka.ensure_topics(s, timeout=10.0)
    assert time.perf_counter() - started < 3  # not librdkafka's 10 s of retries


@pytest.mark.parametrize(
    "args",
    [
        ("sink", "--until-idle"),
        ("ingest", "simulate", "--ticks", "10"),
        ("stream",),
        # the live feed is never reached: topics are checked before the producer or the socket exist
        ("ingest", "coinbase", "--duration", "5"),
    ],
)
def test_kafka_commands_without_a_broker_print_one_line_not_a_traceback(
    make_settings: Callable[..., Settings], args: tuple[str, ...]
) -> None:
    from tests.cli.helpers import tickstore

    s = make_settings(broker_port=free_port())
    run = tickstore(s, *args, check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"no Kafka broker answers at 127.0.0.1:{s.broker_port}" in run.stderr
    assert "%3|" not in run.stderr  # librdkafka's own connection log stays quiet


def test_broker_start_with_an_external_kafka_set_says_it_starts_none_of_its_own(
    make_settings: Callable[..., Settings],
) -> None:
    from tests.cli.helpers import env_for, tickstore

    # a user taking TICKSTORE_KAFKA_BOOTSTRAP for where the embedded broker goes was told, by
    # `tickstore broker start`, to start the embedded one with `tickstore broker start`
    port = free_port()
    s = make_settings(broker_port=port)
    run = tickstore(
        s, "broker", "start", check=False, env={**env_for(s), "TICKSTORE_KAFKA_BOOTSTRAP": s.bootstrap}
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    said = " ".join(run.stderr.split())
    assert f"no Kafka broker answers at 127.0.0.1:{port}" in said
    assert "start that Kafka or correct TICKSTORE_KAFKA_BOOTSTRAP" in said
    assert "while it is set, tickstore starts no broker of its own: unset it for the embedded one" in said
    assert "start the embedded one with" not in said
    assert not (s.run_dir / "broker.pid").exists()


def test_a_broker_that_went_away_is_logged_once_a_minute_not_twenty_times_a_second(
    make_settings: Callable[..., Settings],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(broker_port=free_port())  # nothing listens there: as after a broker stops
    consumer = kafka.consumer(settings, "gone")
    consumer.subscribe([settings.topic_raw])
    deadline = time.monotonic() + 4
    try:
        while time.monotonic() < deadline:
            consumer.consume(10, 0.1)  # the sink's loop: librdkafka reconnects every ~50 ms meanwhile
    finally:
        consumer.close()
    # librdkafka wrote each failed reconnect to stderr itself: ~400 lines in 20 s under `tickstore sink`
    assert "Connect to" not in capfd.readouterr().err
    refused = [
        r for r in caplog.records if r.name == "tickstore.kafka.client" and "Connect to" in r.getMessage()
    ]
    assert len(refused) == 1 and f":{settings.broker_port}" in refused[0].getMessage()


def test_broker_status_tells_a_kafka_broker_from_another_listener(
    make_settings: Callable[..., Settings],
) -> None:
    from tests.cli.helpers import tickstore

    with socket.socket() as listener:  # accepts connections and never speaks Kafka, as a web server
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        settings = make_settings(broker_port=listener.getsockname()[1])
        run = tickstore(settings, "broker", "status", check=False)
    # it said "up", then printed librdkafka's traceback
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "accepts connections but gave no Kafka metadata" in run.stdout and ": up" not in run.stdout, (
        run.stdout
    )


@pytest.mark.kafka
def test_kafka_config_reaches_every_client(kafka_settings: Settings) -> None:
    """TICKSTORE_KAFKA_CONFIG is how a real Kafka's credentials get in. Clients told to speak TLS to
    this plaintext broker get nothing through, where the same clients without it do."""
    kafka.ensure_topics(kafka_settings)
    plain = kafka.producer(kafka_settings)
    plain.produce(kafka_settings.topic_raw, b"{}")
    assert plain.flush(10) == 0
    member = kafka.consumer(kafka_settings, "plain-group")
    member.subscribe([kafka_settings.topic_raw])
    assert _consumed(member, 1, 20) == 1

    tls = kafka_settings.model_copy(update={"kafka_config": {"security.protocol": "SSL"}})
    with pytest.raises(kafka.BrokerUnreachable):
        kafka.ensure_topics(tls, timeout=3.0)
    producer = kafka.producer(tls)
    producer.produce(tls.topic_raw, b"{}")
    assert producer.flush(3) == 1  # still queued
    member = kafka.consumer(tls, "tls-group")
    member.subscribe([tls.topic_raw])
    assert _consumed(member, 1, 5) == 0


def _consumed(member: Consumer, want: int, seconds: float) -> int:
    """How many messages ``member`` got within ``seconds`` (stopping at ``want``); closes it."""
    got, deadline = 0, time.monotonic() + seconds
    try:
        while got < want and time.monotonic() < deadline:
            got += sum(1 for m in member.consume(10, 0.5) if m.error() is None)
    finally:
        member.close()
    return got


def test_a_kafka_property_librdkafka_does_not_know_is_refused_before_anything_starts(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(kafka_config={"sasl.mechanismz": "PLAIN"})
    for make in (kafka.admin, kafka.producer, lambda s: kafka.consumer(s, "g")):
        with pytest.raises(kafka.KafkaConfigError, match='No such configuration property: "sasl.mechanismz"'):
            make(s)


def test_consumers_say_the_embedded_broker_holds_their_group_join(
    make_settings: Callable[..., Settings],
) -> None:
    # the sink's and the stream's first log line: seconds of silence read as a hang otherwise
    assert kafka.join_note(make_settings(rebalance_timeout_ms=6000)) == (
        " (the embedded broker holds a group join up to 6 s)"
    )
    assert kafka.join_note(make_settings(kafka_bootstrap="kafka.internal:9092")) == ""


@pytest.fixture
def login_broker(tmp_path: Path) -> Iterator[str]:
    """A real Tansu broker that asks every client to log in (SASL SCRAM), on a free port; it knows no
    user (Tansu 0.6.0 creates them only over an authenticated connection), so every login fails."""
    url = f"tcp://127.0.0.1:{free_port()}"
    with (tmp_path / "tansu.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(broker.tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
            + ["--authentication"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        address = url.removeprefix("tcp://")
        deadline = time.monotonic() + 10
        while kafka._refused(address, 0.2) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield address
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.kafka
def test_a_broker_asking_for_a_login_is_named_with_what_to_set(
    make_settings: Callable[..., Settings], login_broker: str
) -> None:
    from tests.cli.helpers import env_for, tickstore

    # no credentials: dropped without a word, as a TLS or SASL Kafka drops a plaintext client
    bare = make_settings(kafka_bootstrap=login_broker)
    with pytest.raises(kafka.BrokerRefused, match="set security.protocol .*TICKSTORE_KAFKA_CONFIG") as caught:
        kafka.ensure_topics(bare, timeout=3.0)
    assert not caught.value.login
    # credentials it refuses: the broker's reason, and which properties to check
    login = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-256"}
    wrong = make_settings(
        kafka_bootstrap=login_broker, kafka_config=login | {"sasl.username": "u", "sasl.password": "p"}
    )
    with pytest.raises(
        kafka.BrokerRefused, match=r"refused tickstore's login \(.*SASL authentication error"
    ) as caught:
        kafka.ensure_topics(wrong, timeout=3.0)
    assert caught.value.login and "sasl.username and sasl.password in TICKSTORE_KAFKA_CONFIG" in str(
        caught.value
    )
    # the same from the commands: a command stops saying so, `status` names it
    env = env_for(wrong) | {
        "TICKSTORE_KAFKA_BOOTSTRAP": login_broker,
        "TICKSTORE_KAFKA_CONFIG": json.dumps(wrong.kafka_config),
    }
    run = tickstore(wrong, "ingest", "replay", str(SHARED / "advanced_trade"), check=False, env=env)
    assert run.returncode == 1 and "refused tickstore's login" in run.stderr and "Traceback" not in run.stderr
    status = tickstore(wrong, "broker", "status", check=False, env=env)
    assert "127.0.0.1" in status.stdout and ": refused tickstore's login (" in " ".join(
        status.stdout.split()
    ), status.stdout


def test_librdkafka_lines_repeated_while_a_broker_is_down_pass_once_a_minute_with_their_count() -> None:
    import logging

    quiet = kafka._OncePerMinute()

    def line(ms: int) -> logging.LogRecord:
        text = f"FAIL [rdkafka#consumer-1] 127.0.0.1:9/bootstrap: Connect failed after {ms} ms"
        return logging.LogRecord("tickstore.kafka.client", logging.WARNING, __file__, 1, text, None, None)

    assert quiet.filter(line(3))
    assert not quiet.filter(line(4))  # the same line but for its timing, within the minute
    (key,) = quiet._seen
    shown, repeats = quiet._seen[key]
    quiet._seen[key] = (shown - kafka.REPEAT_EVERY_S - 1, repeats)  # as a minute later
    passed = line(5)
    assert quiet.filter(passed)
    assert passed.getMessage().endswith("after 5 ms (and 1 more time in the last minute)")
    for ms in range(3):
        assert not quiet.filter(line(ms))
    quiet._seen[key] = (quiet._seen[key][0] - kafka.REPEAT_EVERY_S - 1, quiet._seen[key][1])
    again = line(9)
    assert quiet.filter(again) and again.getMessage().endswith("(and 3 more times in the last minute)")


def test_a_stop_landing_while_a_client_reads_its_configuration_is_the_stop_not_a_config_error() -> None:
    # confluent-kafka takes an exception raised by Python code it runs while reading its conf for a
    # bad property: a Ctrl-C in those 2 ms said "check TICKSTORE_KAFKA_CONFIG" and was lost (the
    # demo's CI run). A property name whose str() takes the signal puts it there every time.
    class Stop(Exception):
        pass

    class SignalledName(str):
        def __str__(self) -> str:
            signal.raise_signal(signal.SIGINT)
            for _ in range(1000):  # Python steps, where the handler runs
                pass
            return "linger.ms"

    def stop(signum: int, frame: object) -> None:
        raise Stop

    previous = signal.signal(signal.SIGINT, stop)
    try:
        with pytest.raises(Stop):
            kafka._made(Producer, {"bootstrap.servers": f"127.0.0.1:{free_port()}", SignalledName("x"): 5})
        assert signal.getsignal(signal.SIGINT) is stop
    finally:
        signal.signal(signal.SIGINT, previous)
