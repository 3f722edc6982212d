"""Read a product's online features, and how old they are, from the Feast online store."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from feast import FeatureStore, FeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type

from tickstore.feature_sql import same_definition
from tickstore.settings import Settings
from tickstore_feast.online import CLOCK_VIEW, UNAVAILABLE, fail_fast, holds_nothing, redis_read, unreadable
from tickstore_feast.repo import feature_store
from tickstore_feast.source import fingerprints

# Proto fields read directly: a tenth of the cost of Feast's general converter, which remains for the rest.
SCALARS = frozenset({"double_val", "float_val", "int64_val", "int32_val", "bool_val", "string_val"})
SERVICE = "volatility_model"


class FeaturesUnavailable(RuntimeError):
    """The feature registry or online store cannot be read (not applied, store down)."""


@dataclass
class ProductFeatures:
    """One product's online features at read time."""

    product_id: str
    event_time_us: int | None  # newest tick the online values describe; None: never seen
    age_s: float | None
    values: dict[str, Any] = field(default_factory=dict)  # feature -> value (None past its view's TTL)
    expired_views: list[str] = field(default_factory=list)  # views older than their TTL

    @property
    def known(self) -> bool:
        return self.event_time_us is not None


class OnlineFeatures:
    """The feature service's views, read straight through Feast's provider (no per-call registry work).

    A view whose newest row is older than its TTL gives NULLs, exactly as the point-in-time join gives
    NULLs to training rows in the same situation: the model sees online what it saw in training.
    """

    def __init__(self, settings: Settings, store: FeatureStore | None = None) -> None:
        self.settings = settings
        self.store = store or feature_store(settings, apply=False)
        try:
            service = self.store.get_feature_service(SERVICE)
            self.clock = self.store.get_feature_view(CLOCK_VIEW)
            self.views: list[tuple[FeatureView, list[str]]] = [
                (self.store.get_feature_view(p.name), [f.name for f in p.features])
                for p in service.feature_view_projections
            ]
        except Exception as exc:  # Feast raises several kinds of "not found"
            raise FeaturesUnavailable(
                f"the feature registry has no {SERVICE!r} service or {CLOCK_VIEW!r} view ({exc}); "
                "run `tickstore stream` (it registers them) or `tickstore feast apply`"
            ) from exc
        self.served = frozenset(name for _, names in self.views for name in names)
        self.fingerprints = fingerprints(view for view, _ in self.views)
        self._redefined: tuple[list[str], dict[str, str], list[str]] | None = None
        self.provider = self.store._get_provider()
        # Redis: the clock and every view in one round trip (each waits for redis-server to get a core)
        redis = getattr(self.store.config.online_store, "type", "sqlite") == "redis"
        self._together = [(self.clock, ["event_time_us"]), *self.views] if redis else None
        fail_fast(self.store)  # a request answers 503 at once when Redis is down, not after its retries

    def _read(self, view: FeatureView, keys: list[EntityKey], names: list[str]) -> list[Any]:
        try:
            # a copy: Feast's Redis store appends "_ts:<view>" to the list it is given, so the view's
            # own list grew by a field a request (and /v1/features listed them)
            return self.provider.online_read(
                config=self.store.config, table=view, entity_keys=keys, requested_features=list(names)
            )
        except (*UNAVAILABLE, sqlite3.Error) as exc:  # down, unreachable, locked, or never materialized
            raise FeaturesUnavailable(unreadable(self.store, exc)) from exc

    def _read_together(self, keys: list[EntityKey]) -> list[Any] | None:
        """The clock's and every view's rows in one round trip on Redis; None on other stores."""
        if self._together is None:
            return None
        try:
            return redis_read(self.store, self._together, keys)
        except UNAVAILABLE as exc:  # down or unreachable
            raise FeaturesUnavailable(unreadable(self.store, exc)) from exc

    def described(self) -> dict[str, str]:
        """Every feature the service serves, by name, with its description in the registry (the
        comment beside its column in `sql/`; empty for a field registered without one)."""
        return {f.name: f.description for view, names in self.views for f in view.features if f.name in names}

    def unserved(self, features: list[str]) -> list[str]:
        """Which of ``features`` (a model's inputs) the feature service does not serve."""
        return [f for f in features if f not in self.served]

    def redefined(self, features: list[str], trained_on: dict[str, str]) -> list[str]:
        """The views serving any of ``features`` (a model's inputs) whose definition is not the one
        ``trained_on`` records (view -> fingerprint, logged by `tickstore train`): the values they serve
        now are computed by other SQL than the values the model learned from."""
        cached = self._redefined
        if cached is not None and cached[0] is features and cached[1] is trained_on:
            return cached[2]  # asked on every request, about the same model: answered once
        wanted = set(features)
        changed = [
            view.name
            for view, names in self.views
            if view.name in trained_on
            and not same_definition(trained_on[view.name], self.fingerprints[view.name])
            and not wanted.isdisjoint(names)
        ]
        # the model's own objects are kept, so their ids can't come back as another model's
        self._redefined = (features, trained_on, changed)
        return changed

    def holds_nothing(self) -> bool:
        """Whether the online store surely holds no product's features yet (nothing written to it)."""
        return holds_nothing(self.store, self.clock)

    def ping(self) -> None:
        """Read a key that does not exist: raises when the online store is unreachable."""
        self._read(self.clock, _keys(["__readyz__"]), ["event_time_us"])

    def read(self, products: list[str], now_us: int | None = None) -> list[ProductFeatures]:
        """Features of ``products``, in order; ages from the tick clock, at microsecond resolution,
        as of ``now_us`` (microseconds since the epoch; default: now). A view exactly its TTL old is
        still current, as in the point-in-time join."""
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        keys = _keys(products)
        together = self._read_together(keys)
        clocks = [
            (row["event_time_us"].int64_val or None) if row and row.get("event_time_us") else None
            for _, row in (together[0] if together else self._read(self.clock, keys, ["event_time_us"]))
        ]
        result = [
            ProductFeatures(p, at, None if at is None else (now_us - at) / 1e6)
            for p, at in zip(products, clocks, strict=True)
        ]
        for i, (view, names) in enumerate(self.views, start=1):
            ttl = view.ttl.total_seconds() if view.ttl and view.ttl > timedelta(0) else None
            expired = [ttl is not None and pf.age_s is not None and pf.age_s > ttl for pf in result]
            if together:
                rows = together[i]
            elif all(expired):  # a view expired for every product needs no read: its values are thrown away
                rows = [(None, None)] * len(products)
            else:
                rows = self._read(view, keys, names)
            for pf, is_expired, (_, row) in zip(result, expired, rows, strict=True):
                if is_expired:
                    pf.expired_views.append(view.name)
                for name in names:
                    pf.values[name] = None if is_expired or not row or name not in row else _python(row[name])
        return result


def _keys(products: list[str]) -> list[EntityKey]:
    return [EntityKey(join_keys=["product_id"], entity_values=[Value(string_val=p)]) for p in products]


def redefined_message(views: list[str], run_id: str) -> str:
    """What to tell a user when the model of run ``run_id`` was trained on other SQL for ``views``."""
    names = ", ".join(views)
    return (
        f"the model was trained on features that other SQL computed for {names}: the online values are "
        "not computed the way its training set was. Train on the SQL applied now (`tickstore train`), "
        f"or put back the SQL it was trained on (its MLflow run {run_id} keeps it under sql/) and run "
        "`tickstore feast apply`"
    )


def _python(value: Value) -> Any:
    """A feature value as a Python scalar (None when unset, as for a NULL written online)."""
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    return getattr(value, kind) if kind in SCALARS else feast_value_type_to_python_type(value)
