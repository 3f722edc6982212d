"""Open the Feast feature repo (`feature_repo/`) for a given tickstore data directory."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from feast import FeatureStore, RepoConfig

from tickstore.settings import Settings

FEATURE_REPO = Path(__file__).resolve().parent.parent / "feature_repo"
DEFAULT_HOME = "../.tickstore"  # what feature_store.yaml's relative paths point into


def _reroot(path: str, home: Path) -> str:
    """A yaml path under the default data directory, moved under ``home``."""
    if path.startswith(DEFAULT_HOME + "/"):
        return str(home / path[len(DEFAULT_HOME) + 1 :])
    return str((FEATURE_REPO / path).resolve())


def repo_config(settings: Settings, snapshot: int | None = None) -> RepoConfig:
    """feature_store.yaml, with its data paths under ``settings.home`` and the lake pinned to ``snapshot``."""
    raw: dict[str, Any] = yaml.safe_load((FEATURE_REPO / "feature_store.yaml").read_text())
    home = settings.home.resolve()
    raw["registry"] = dict(raw["registry"], path=_reroot(raw["registry"]["path"], home))
    if settings.online_store == "redis":
        raw["online_store"] = {"type": "redis", "connection_string": settings.redis_url}
    else:
        raw["online_store"] = dict(raw["online_store"], path=_reroot(raw["online_store"]["path"], home))
    raw["offline_store"] = dict(raw["offline_store"], home=str(home), snapshot=snapshot)
    (home / "feast").mkdir(parents=True, exist_ok=True)
    config = RepoConfig(**raw)
    config.repo_path = FEATURE_REPO
    return config


def definitions() -> ModuleType:
    """feature_repo/features.py as a module (the entity, feature views and services)."""
    spec = importlib.util.spec_from_file_location("tickstore_feature_repo", FEATURE_REPO / "features.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def feature_store(settings: Settings, snapshot: int | None = None, apply: bool = True) -> FeatureStore:
    """A FeatureStore on the lake below ``settings.home``; with ``apply`` the definitions are registered."""
    config = repo_config(settings, snapshot)
    store = FeatureStore(repo_path=str(FEATURE_REPO), config=config)
    if apply:
        d = definitions()
        store.apply([d.product, d.ticks_10s, d.ticks_60s, d.ticks_300s, d.tick_clock, d.volatility_model])
    if config.online_store.type == "sqlite":
        _use_wal(Path(config.online_store.path))
    return store


def _use_wal(path: Path) -> None:
    """Put the SQLite online store in WAL mode (persistent): the scorer reads while the stream writes,
    and in the default rollback journal a read waits for every write's commit."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            con.execute("PRAGMA journal_mode=WAL")
