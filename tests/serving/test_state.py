"""What a scorer holds between requests: the online reader follows the registry and the store's file."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from serving import create_app
from tests.serving.conftest import register_model, write_online
from tickstore.settings import Settings
from tickstore_feast.config import registry_path, registry_stamp


def test_the_scorer_reads_an_online_store_file_made_again_under_it(
    serving_settings: Settings, watching_app: Callable[[Settings], Flask]
) -> None:
    register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "BTC-USD", value=0.5)
    client = watching_app(serving_settings).test_client()

    def spread() -> float | None:
        features = client.get("/v1/features/BTC-USD").get_json().get("features", {})
        return features.get("spread_bps_mean_60s")

    assert spread() == 0.5
    # emptied the documented way (the file removed), then filled again by a stream or a materialize:
    # Feast's connection went on reading the removed file, 0.5 until the features went stale
    for part in (serving_settings.home / "feast").glob("online_store.db*"):
        part.unlink()
    stamp = registry_stamp(registry_path(serving_settings))
    write_online(serving_settings, "BTC-USD", value=0.75, apply=False)
    assert registry_stamp(registry_path(serving_settings)) == stamp  # the file alone changed
    deadline = time.monotonic() + 15
    while spread() != 0.75 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert spread() == 0.75


def test_a_damaged_mlflow_store_is_named_by_readyz(make_settings) -> None:  # type: ignore[no-untyped-def]
    from tickstore.mlflow_store import _sqlite_path

    s = make_settings()
    database = _sqlite_path(s.mlflow_tracking_uri())
    assert database is not None
    database.parent.mkdir(parents=True)
    database.write_bytes(b"\0" * 4096)  # a store overwritten, or cut short
    problems = create_app(s, watch_model=False).test_client().get("/readyz").get_json()["problems"]
    # it was MLflow's first query and SQLAlchemy's words: "(sqlite3.DatabaseError) ... [SQL: SELECT name ..."
    assert any(f"the MLflow store {database} is damaged" in p and "move it aside" in p for p in problems), (
        problems
    )


def test_a_removed_registry_is_said_once_and_the_scorer_reads_as_before(
    serving_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # removed to replace a damaged one: each look had Feast write an empty registry and fail on it,
    # "the changed feature registry cannot be read" every second until one was applied again
    from tickstore_feast.repo import feature_store

    register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "BTC-USD", value=0.5)
    client = create_app(serving_settings, watch_model=False).test_client()
    state = client.application.extensions["tickstore"]
    assert client.get("/v1/features/BTC-USD").status_code == 200
    registry = Path(registry_path(serving_settings))
    registry.unlink()
    with caplog.at_level(logging.WARNING, logger="serving.state"):
        for _ in range(3):
            state._checked = 0  # as every second
            assert client.get("/v1/features/BTC-USD").get_json()["features"]["spread_bps_mean_60s"] == 0.5
    said = [r.getMessage() for r in caplog.records if r.name == "serving.state"]
    assert len(said) == 1 and f"the feature registry {registry} was removed: reading as before" in said[0]
    assert not registry.exists()  # a reader writes none
    reader = state._features
    feature_store(serving_settings)  # applied again
    settled(state, client, registry)
    assert state._features is not reader  # the applied one read
    # damaged under it: the rebuild's thread died of it, and the scorer never looked again
    caplog.clear()
    reader = state._features
    registry.write_bytes(b"\x00 cut short")
    damaged = registry_stamp(str(registry))
    with caplog.at_level(logging.WARNING, logger="serving.state"):
        started = time.monotonic()
        while time.monotonic() - started < 3 or "is damaged" not in caplog.text:  # 3 s of looks at least
            assert time.monotonic() - started < 15, "the damaged registry was never said"
            state._checked = 0  # as every second
            client.get("/v1/features/BTC-USD")
            time.sleep(0.1)
    assert caplog.text.count("is damaged") == 1 and state._unreadable == damaged  # said once
    assert state._features is reader
    assert client.get("/v1/features/BTC-USD").status_code == 200
    registry.unlink()  # as its error says, then applied again
    feature_store(serving_settings)
    settled(state, client, registry)
    assert state._features is not reader


def settled(state: Any, client: Any, registry: Path) -> None:
    """Ask until the scorer has looked at ``registry`` as it is now."""
    deadline = time.monotonic() + 15
    while (state._registry_stamp, state._rebuilding) != (registry_stamp(str(registry)), False):
        assert time.monotonic() < deadline, "the scorer never took up the registry as it is"
        state._checked = 0  # as every second
        client.get("/v1/features/BTC-USD")
        time.sleep(0.1)
