"""`tickstore ingest rejected` (ingest/rejected.py): rejects sent through a real broker and sink again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest import rejected, replay
from ingest.sink import Sink
from tests.cli.helpers import tickstore
from tests.ingest.helpers import query
from tests.ingest.test_sink import good
from tickstore.settings import Settings

pytestmark = pytest.mark.kafka


def counts(settings: Settings) -> tuple[int, int]:
    """Rows of ticks and of ticks_rejected."""
    return (
        query(settings, "SELECT count(*) FROM ticks")[0][0],
        query(settings, "SELECT count(*) FROM ticks_rejected")[0][0],
    )


def test_rejected_messages_land_once_their_reason_is_gone_and_again_add_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    strict = kafka_settings.model_copy(update={"sink_max_tick_bytes": 400})
    padded = json.dumps(dict(json.loads(good(2)), note="x" * 300)).encode()  # a good tick, over 400 bytes
    too_large = f"message too large: {len(padded)} bytes (limit 400)"
    broken = b'{"type": "ticker", "product_id": "SOL-USD", "price": '
    path = tmp_path / "in.ndjson"
    path.write_bytes(b"\n".join([good(1), padded, broken]) + b"\n")
    replay.replay(strict, [path])
    Sink(strict, until_idle=True).run()
    assert counts(strict) == (1, 2)

    counted = rejected.republish(strict, dry_run=True)
    assert counted.sent == 0 and counted.by_reason == {
        too_large: 1,
        "invalid JSON": 1,
    }, counted.by_reason
    status = tickstore(strict, "status", check=False).stdout  # exit 1: no online features, no model
    assert (
        "2 rejected (table ticks_rejected, for `tickstore sql`; by reason: `tickstore ingest rejected --dry-run`)"
        in (" ".join(status.split()))
    ), status
    said = tickstore(strict, "ingest", "rejected", "--dry-run").stderr
    assert "2 rejected messages" in " ".join(said.split()), said
    assert counts(strict) == (1, 2)  # a dry run sends nothing

    # the limit raised: the padded tick lands, byte for byte the message that was rejected
    relaxed = kafka_settings.model_copy(update={"sink_max_tick_bytes": 1 << 20})
    assert rejected.republish(relaxed, "message too large%").sent == 1
    Sink(relaxed, until_idle=True).run()
    assert counts(relaxed) == (2, 2)
    assert query(relaxed, "SELECT count(*) FROM ticks WHERE trade_id = 2")[0][0] == 1

    # everything again: the tick is in the lake already (keyed by content), the broken JSON fails again
    sent = tickstore(relaxed, "ingest", "rejected")
    assert "published 2 of 2 to" in " ".join(sent.stderr.split()), sent.stderr
    Sink(relaxed, until_idle=True).run()
    assert counts(relaxed) == (2, 3)
    reasons = query(relaxed, "SELECT reason, count(*) FROM ticks_rejected GROUP BY ALL ORDER BY ALL")
    assert reasons == [("invalid JSON", 2), (too_large, 1)], reasons
    # each message once, however many times it was rejected: runs after runs don't double what they send
    assert rejected.republish(relaxed, dry_run=True).by_reason == {too_large: 1, "invalid JSON": 1}
    nothing = tickstore(relaxed, "ingest", "rejected", "--reason", "no such reason%")
    assert "no rejected messages with a reason LIKE 'no such reason%'" in nothing.stderr
