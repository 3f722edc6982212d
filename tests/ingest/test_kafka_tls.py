"""tickstore against a Kafka reached over TLS only (tests/tls_relay.py): every command's
clients take TICKSTORE_KAFKA_CONFIG's TLS settings, and a certificate they can't verify is named."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest import kafka
from tests.cli.helpers import env_for, tickstore
from tests.conftest import SHARED
from tests.tls_relay import TlsKafka, tls_kafka
from tickstore.settings import Settings

RECORDING = SHARED / "advanced_trade" / "btc-eth-usd_2026-04-03_no-sizes.ndjson"


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsKafka]:
    with tls_kafka(tmp_path) as server:
        yield server


@pytest.mark.kafka
def test_ticks_reach_the_lake_through_a_kafka_over_tls(
    make_settings: Callable[..., Settings], tls_broker: TlsKafka
) -> None:
    config = {"security.protocol": "SSL", "ssl.ca.location": str(tls_broker.ca)}
    s = make_settings(kafka_bootstrap=tls_broker.bootstrap, kafka_config=config)
    env = env_for(s) | {
        "TICKSTORE_KAFKA_BOOTSTRAP": tls_broker.bootstrap,
        "TICKSTORE_KAFKA_CONFIG": json.dumps(config),
    }
    started = tickstore(s, "broker", "start", env=env)  # with an external Kafka: creates the topics
    assert f"external Kafka (no embedded broker started) at {tls_broker.bootstrap}" in started.stderr
    tickstore(s, "ingest", "replay", str(RECORDING), env=env)
    tickstore(s, "sink", "--until-idle", env=env)
    lines = sum(1 for line in RECORDING.read_text().splitlines() if line.strip())
    counted = tickstore(s, "sql", "SELECT count(*) FROM ticks", "--format", "csv", env=env).stdout
    assert counted.split() == ["count_star()", str(lines)]
    status = tickstore(s, "broker", "status", env=env).stdout
    assert f"external broker at {tls_broker.bootstrap}: up" in status, status


@pytest.mark.kafka
def test_a_broker_certificate_the_client_cannot_verify_is_named(
    make_settings: Callable[..., Settings], tls_broker: TlsKafka
) -> None:
    # no ssl.ca.location: the test CA is in no trust store
    s = make_settings(kafka_bootstrap=tls_broker.bootstrap, kafka_config={"security.protocol": "SSL"})
    with pytest.raises(kafka.BrokerRefused) as caught:
        kafka.ensure_topics(s, timeout=3.0)
    said = str(caught.value)
    assert "TLS handshake failed" in said and "certificate verify failed" in said, said
    assert "ssl.ca.location" in said and "TICKSTORE_KAFKA_CONFIG" in said
