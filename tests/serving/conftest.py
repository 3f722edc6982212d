"""Fixtures for the scoring API: a real MLflow champion and real online rows in Feast's store."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from flask import Flask
from mlflow import sklearn as mlflow_sklearn
from mlflow.tracking import MlflowClient
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from serving import create_app
from tickstore.settings import Settings
from tickstore_feast import source
from tickstore_feast.repo import definitions, feature_store
from training import tracking

WINDOWS = (10, 60, 300)
MODEL = "tickstore-volatility"


def feature_columns() -> list[str]:
    d = definitions()
    return [f.name for view in (d.ticks_10s, d.ticks_60s, d.ticks_300s) for f in view.features]


def register_model(
    settings: Settings,
    seed: int,
    threshold: float,
    alias: str = "champion",
    columns: list[str] | None = None,
    fingerprinted: bool = True,
) -> str:
    """Fit a small logistic regression on seeded data, log it the way `tickstore train` does (sklearn
    flavor, `features` tag, `decision_threshold` param, the fingerprints of the views' SQL as the
    registry has it now), register it and point ``alias`` at it.

    ``columns``: the features it reads (default: the service's). ``fingerprinted=False``: a run of a
    tickstore that logged no fingerprints (nor its label's horizon and spike threshold)."""
    experiment = tracking.setup(settings)  # artifacts under the test's home, not ./mlruns
    store = feature_store(settings)
    fingerprints = source.fingerprints(store.list_feature_views()) if fingerprinted else {}
    columns = columns or feature_columns()
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(400, len(columns))), columns=columns)
    y = (x["ret_std_60s"] + 0.5 * rng.normal(size=400) > 0.8).astype(int)
    model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), LogisticRegression())
    model.fit(x, y)
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_params({"decision_threshold": threshold, "model": "logreg"})
        mlflow.log_params({f"sql_fingerprint_{view}": fp for view, fp in fingerprints.items()})
        if fingerprinted:  # what the label was, as `tickstore train` logs it (an older one did not)
            mlflow.log_params({"horizon_s": 60.0, "spike_threshold_fwd_vol": 0.000287})
        mlflow.set_tags({"features": json.dumps(columns)})
        # requirements given, as `tickstore train` gives them: inferring them costs ~3 s a model
        mlflow_sklearn.log_model(
            model,
            name="model",
            skops_trusted_types=["numpy.dtype"],
            pip_requirements=["scikit-learn", "skops"],
        )
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", MODEL)
    MlflowClient().set_registered_model_alias(MODEL, alias, version.version)
    return str(version.version)


def write_online(
    settings: Settings,
    product: str,
    age: timedelta = timedelta(0),
    value: float = 0.5,
    count: int = 7,
    apply: bool = True,
) -> None:
    """Put one row per view (and the tick clock) for ``product`` into the online store, its newest tick
    ``age`` old as of now (taken at write time: registering a model can take seconds under load).
    ``apply=False``: the feature repo is not applied first, so the registry file stays as it was."""
    at = datetime.now(UTC) - age
    store = feature_store(settings, apply=apply)
    for w in WINDOWS:
        view = store.get_feature_view(f"ticks_{w}s")
        row: dict[str, Any] = {"product_id": [product], "event_time": [at]}
        for f in view.features:
            row[f.name] = [count if f.name.startswith("tick_count") else value]
        store.write_to_online_store(view.name, pd.DataFrame(row))
    clock = pd.DataFrame(
        {"product_id": [product], "event_time": [at], "event_time_us": [int(at.timestamp() * 1e6)]}
    )
    store.write_to_online_store("tick_clock", clock)


@pytest.fixture
def watching_app() -> Iterator[Callable[[Settings], Flask]]:
    """``create_app(settings)`` watching the model and the registry, as under `tickstore serve`; its
    threads stopped when the test ends. Left running, they asked MLflow's process-wide store every
    0.2 s for the rest of the session, by then a later test's."""
    apps: list[Flask] = []

    def factory(settings: Settings) -> Flask:
        apps.append(create_app(settings))
        return apps[-1]

    yield factory
    for app in apps:
        app.extensions["tickstore"].close()


@pytest.fixture
def serving_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(serve_reload_s=0.2)


@pytest.fixture(params=["sqlite", "redis"])
def online_settings(request: pytest.FixtureRequest, serving_settings: Settings) -> Settings:
    """``serving_settings`` on each online store in turn: SQLite, then a real Redis (`redis_url`)."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return serving_settings.model_copy(update={"online_store": "redis", "redis_url": url})
    return serving_settings
