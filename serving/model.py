"""The scoring model: loaded from MLflow by URI, reloaded when its registry alias moves."""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import mlflow
import numpy as np
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from serving.linear import CompiledLinear, compile_linear
from serving.model_uri import ALIAS_URI, VERSION_URI, hint
from serving.trees import CompiledTrees, compile_xgboost
from tickstore.mlflow_store import (
    check_server,
    reason,
    store_exists,
    store_file,
    use_mlflow_store,
)
from tickstore.settings import Settings

log = logging.getLogger(__name__)

# Models are fitted on DataFrames and scored on arrays in the same column order (see predict).
warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)


class ModelUnavailable(RuntimeError):
    """No model can be loaded from the configured URI (no champion yet, registry unreachable)."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score, with what it needs to know about its own inputs."""

    uri: str
    name: str
    version: str | None
    run_id: str
    features: list[str]  # columns, in training order
    threshold: float  # the spike decision threshold chosen on validation
    estimator: Any  # has predict_proba
    # the estimator in NumPy, when we can compile it: its trees (XGBoost), or its linear pipeline
    compiled: CompiledTrees | CompiledLinear | None = None
    # feature view -> fingerprint of the SQL its training set was computed by (none for older runs)
    sql_fingerprints: dict[str, str] = field(default_factory=dict)
    kind: str | None = None  # zscore, logreg or xgboost, as `tickstore train` logged it
    # what its probability is of: the realized volatility over the next ``horizon_s`` seconds above
    # ``spike_fwd_vol`` (the labels' spike threshold); None for a run logged without them
    horizon_s: float | None = None
    spike_fwd_vol: float | None = None

    @cached_property
    def described(self) -> dict[str, Any]:
        """The model as responses name it: which one, and what its probability is a probability of.
        Built once a model (responses only read it), not once a request."""
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "uri": self.uri,
            "kind": self.kind,
            "horizon_s": self.horizon_s,
            "spike_fwd_vol": self.spike_fwd_vol,
        }

    def predict(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Spike probabilities for feature rows (missing values as NaN, as in training).

        A plain array in training's column order, not a DataFrame, and no repeated input validation:
        measured 4x faster per request for both flavors, with identical results. XGBoost models are
        walked in NumPy (serving/trees.py): ~30 us a row instead of ~270 us, with XGBoost's probabilities bit for bit;
        the logistic regression and the z-score rule computed in NumPy (serving/linear.py), sklearn's values bit for bit.
        """
        x = np.array(
            [[np.nan if (v := row.get(f)) is None else float(v) for f in self.features] for row in rows],
            dtype=float,
        )
        if self.compiled is not None:
            return self.compiled.predict(x)
        import sklearn  # loaded with the model already; not at import: `tickstore status` has no use for it

        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return np.asarray(self.estimator.predict_proba(x))[:, 1]


def load(uri: str) -> LoadedModel:
    """Load ``uri`` (models:/name@alias, models:/name/version or runs:/id/model) in its own flavor."""
    client = MlflowClient()
    name, version = uri, None
    # MLflow, given a URI, downloads to a temporary folder of its own that nothing removes: two a load
    # (the MLmodel file to read its flavors, then the model), so a scorer whose alias moved daily, or
    # each test, left folders in /tmp. Downloaded here once, and removed once the model is in memory.
    with tempfile.TemporaryDirectory(prefix="tickstore-model-") as folder:
        try:
            match = ALIAS_URI.match(uri)
            if match:
                mv = client.get_model_version_by_alias(match["name"], match["alias"])
                name, version = mv.name, str(mv.version)
                uri = f"models:/{mv.name}/{mv.version}"  # pin: a concurrent alias move can't mix versions
            elif numbered := VERSION_URI.match(uri):
                name, version = numbered["name"], numbered["version"]
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
            info = Model.load(local)
            run_id = info.run_id
            run = client.get_run(run_id)
        except Exception as exc:  # MLflow raises MlflowException, OSError, ... for "not there"
            raise ModelUnavailable(f"cannot load model {uri}: {reason(exc).rstrip('.')}. {hint()}") from exc
        if "xgboost" in info.flavors:
            from mlflow import xgboost as flavor
        else:
            from mlflow import sklearn as flavor  # type: ignore[no-redef]
        estimator = flavor.load_model(local)
    if hasattr(estimator, "get_booster"):
        # One row at a time: OpenMP threads only spin against the other workers' (measured p99 at
        # 500 req/s: 542 ms with XGBoost's default of every core, vs single digits with one).
        estimator.set_params(n_jobs=1)
        estimator.get_booster().set_param({"nthread": 1})
    features = json.loads(run.data.tags.get("features", "[]"))
    if not features:
        raise ModelUnavailable(
            f"run {run_id} of {uri} has no 'features' tag: it was not logged by tickstore train"
        )
    threshold = float(run.data.params.get("decision_threshold", 0.5))
    compiled = compile_xgboost(estimator) if hasattr(estimator, "get_booster") else compile_linear(estimator)
    fingerprints = trained_fingerprints(run.data.params)
    params = run.data.params
    return LoadedModel(
        uri,
        name,
        version,
        run_id,
        features,
        threshold,
        estimator,
        compiled,
        fingerprints,
        kind=params.get("model"),
        horizon_s=_number(params.get("horizon_s")),
        spike_fwd_vol=_number(params.get("spike_threshold_fwd_vol")),
    )


def _number(param: str | None) -> float | None:
    """A run's numeric param (MLflow keeps params as text), None when it was not logged."""
    return None if param is None else float(param)


def trained_fingerprints(params: dict[str, str]) -> dict[str, str]:
    """View -> fingerprint of the SQL that computed a run's training set, from the run's params."""
    prefix = "sql_fingerprint_"
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


@contextlib.contextmanager
def _quiet_store_errors() -> Iterator[None]:
    """MLflow's SQL store logs each failing query as an ERROR with pages of traceback: a scorer whose
    store had been removed printed ~200 a minute while it went on serving. The scorer says why
    itself, once per distinct problem (`ModelHolder.refresh`)."""
    logger = logging.getLogger("mlflow.store.db.utils")
    before, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = before


class ModelHolder:
    """Holds the current model; a background thread swaps in a new one when the alias moves."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.uri = settings.serve_model_uri
        self.model: LoadedModel | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store_open = False
        try:
            use_mlflow_store(settings)  # points MLflow at the store first, whatever happens after
            self._store_open = True
        except Exception as exc:  # a store that can't be opened now: refresh() reports it and retries
            log.warning("serving: cannot open the MLflow store: %s", exc)
        self.refresh()

    def refresh(self) -> bool:
        """Load the model if there is none yet or the alias points elsewhere; True when it changed."""
        with _quiet_store_errors():
            return self._refresh()

    def _refresh(self) -> bool:
        try:
            if not self._store_open:  # its own words (a damaged store), not MLflow's first query's
                use_mlflow_store(self.settings)
                self._store_open = True
            if not store_exists(self.settings):
                # removed while the scorer ran: asked anyway, SQLite made an empty file there (a reader
                # writing), and MLflow answered with its SQL ("no such table: registered_models")
                raise ModelUnavailable(
                    f"the MLflow store {store_file(self.settings)} was removed"
                    + (": the model loaded before is served until it is back" if self.model else "")
                    + "; `tickstore train` makes a new one, or put the file back"
                )
            # a tracking server that is down: say so now, not after MLflow's minutes of retries
            check_server(mlflow.get_tracking_uri())
            current = self._alias_version()
            if self.model is not None and (current is None or current == self.model.version):
                return False
            model = load(self.uri)
        except ModelUnavailable as exc:
            if self.error != str(exc):  # once per distinct problem, not every reload tick
                log.warning("serving: %s", exc)
            self.error = str(exc)
            return False
        except Exception as exc:  # the registry is unreachable for a moment: keep serving the old model
            if self.error != f"cannot check {self.uri}: {exc}":
                log.warning("serving: cannot check %s: %s", self.uri, exc)
            self.error = f"cannot check {self.uri}: {exc}"
            return False
        previous, self.model, self.error = self.model, model, None
        if previous is not None:
            log.info(
                "serving: loaded %s version %s (was version %s)", model.name, model.version, previous.version
            )
        elif model.version is not None:
            log.info("serving: loaded %s version %s", model.name, model.version)
        else:  # a runs:/ or path URI: no registry version to name
            log.info("serving: loaded %s", model.name)
        return True

    def _alias_version(self) -> str | None:
        match = ALIAS_URI.match(self.uri)
        if not match:
            return None
        try:
            return str(MlflowClient().get_model_version_by_alias(match["name"], match["alias"]).version)
        except Exception as exc:
            raise ModelUnavailable(f"no model at {self.uri}: {reason(exc).rstrip('.')}. {hint()}") from exc

    def start(self) -> None:
        """Check the alias every ``serve_reload_s`` in a daemon thread; for a fixed URI (runs:/...,
        models:/name/version), try again that often until it is loaded."""
        if self._thread is None and (ALIAS_URI.match(self.uri) or self.model is None):
            self._thread = threading.Thread(target=self._watch, name="model-reload", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        alias = ALIAS_URI.match(self.uri) is not None
        # a fixed URI that failed to load at start (a tracking server down for a moment) was never
        # tried again: the scorer stayed up, not ready, until restarted
        while not self._stop.wait(self.settings.serve_reload_s):
            self.refresh()
            if not alias and self.model is not None:
                return  # loaded: what a fixed URI names does not change

    def close(self) -> None:
        """Stop the reload thread, waiting for a reload in flight (it asks MLflow's process-wide store)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
