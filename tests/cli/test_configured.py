"""`tickstore settings` (cli/configured.py): every setting in use, where it came from, secrets masked."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.cli.helpers import env_for, tickstore
from tickstore.settings import Settings


def test_settings_lists_each_value_in_use_and_where_it_came_from(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    env = {
        **env_for(s),
        "TICKSTORE_KAFKA_CONFIG": '{"sasl.password": "hunter2", "security.protocol": "SASL_SSL"}',
        "TICKSTORE_REDIS_URL": "redis://:hunter3@redis.internal:6379/0",
        "tickstore_serve_port": "8123",  # read case aside, as settings are
    }
    env.pop("TICKSTORE_MLFLOW_URI", None)
    env.pop("TICKSTORE_KAFKA_BOOTSTRAP", None)
    run = tickstore(s, "settings", "--home", str(s.home), "--format", "json", env=env)
    listed = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["variable"] for r in listed] == [f"TICKSTORE_{n.upper()}" for n in Settings.model_fields]
    got = {r["variable"]: (r["value"], r["from"]) for r in listed}
    assert got["TICKSTORE_HOME"] == (str(s.home), "--home")
    assert got["TICKSTORE_SERVE_PORT"] == ("8123", "environment")
    assert got["TICKSTORE_KAFKA_CONFIG"] == (
        '{"sasl.password": "***", "security.protocol": "SASL_SSL"}',
        "environment",
    )
    assert got["TICKSTORE_REDIS_URL"] == ("redis.internal:6379,password=***,db=0", "environment")
    assert "hunter" not in run.stdout
    # what an unset one stands for
    assert got["TICKSTORE_KAFKA_BOOTSTRAP"] == (f"unset (the embedded broker at {s.bootstrap})", "default")
    mlflow_db = s.home.resolve() / "mlflow" / "mlflow.db"
    assert got["TICKSTORE_MLFLOW_URI"] == (f"unset (sqlite:///{mlflow_db})", "default")
    assert "TICKSTORE_COINBASE_STALE_S" not in env
    assert got["TICKSTORE_COINBASE_STALE_S"] == ("30.0", "default")
    assert got["TICKSTORE_STREAM_CPUS"][0] == "empty (any CPU)"
    # for reading: a line a setting
    table = tickstore(s, "settings", env=env).stdout.splitlines()
    assert table[0].split() == ["variable", "value", "from"]
    assert len(table) == 2 + len(Settings.model_fields)
    assert table[2 + list(Settings.model_fields).index("serve_port")].split() == [
        "TICKSTORE_SERVE_PORT",
        "8123",
        "environment",
    ]
