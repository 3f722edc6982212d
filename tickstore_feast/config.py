"""feature_store.yaml, read and checked, with its data paths moved under TICKSTORE_HOME.

feature_repo/feature_store.yaml is the one place Feast's paths are set; tickstore's commands and
`tickstore feast` read it through here, so a mistake in it is named as the file's, not met as a
traceback from wherever Feast first resolves a class it names.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from feast import RepoConfig
from feast.errors import FeastError
from feast.infra.provider import get_provider
from pydantic import ValidationError

from tickstore import paths
from tickstore.errors import TickstoreError
from tickstore.paths import FEATURE_REPO
from tickstore.settings import Settings

DEFAULT_HOME = "../.tickstore"  # what feature_store.yaml's relative paths point into


def _reroot(path: str, home: Path) -> str:
    """A yaml path under the default data directory, moved under ``home``."""
    if path.startswith(DEFAULT_HOME + "/"):
        return str(home / path[len(DEFAULT_HOME) + 1 :])
    return str((FEATURE_REPO / path).resolve())


def as_feast_spells(path: str) -> str:
    """``path`` spelled as Feast's CLI spells feature_store.yaml's relative path: `<feature_repo>/<rel>`.

    Feast records each SQLite online table with its database path as a string, and a later
    `feast apply` that spells the same file otherwise sees the table "updated", which Feast 0.67
    carries out by dropping it (`InfraDiff.update` tears down and never re-creates): `feast apply`
    in feature_repo/ (`<repo>/feature_repo/../.tickstore/...`) and `tickstore feast apply` (then
    `<repo>/.tickstore/...`) taking turns left no online table at all.
    """
    return str(FEATURE_REPO / os.path.relpath(path, FEATURE_REPO))


class ConfigError(TickstoreError):
    """feature_repo/feature_store.yaml can't be used as it is: what is wrong in it."""


def _refused(what: str) -> ConfigError:
    """The error for ``what`` is wrong in feature_store.yaml, naming the file."""
    return ConfigError(
        f"{FEATURE_REPO / 'feature_store.yaml'}: {what} (`git diff feature_repo/feature_store.yaml` shows "
        "what was changed in it)"
    )


def _read() -> dict[str, Any]:
    """feature_store.yaml's settings, the sections tickstore moves under TICKSTORE_HOME checked."""
    try:
        raw = yaml.safe_load((FEATURE_REPO / "feature_store.yaml").read_text())
    except yaml.YAMLError as exc:
        raise _refused(f"not YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise _refused("not a mapping of Feast's settings (`project:`, `registry:`, ...)")
    if isinstance(raw.get("registry"), str):  # Feast's short form, `registry: PATH`
        raw["registry"] = {"path": raw["registry"]}
    for section, needs in (("registry", "path"), ("online_store", "type"), ("offline_store", "type")):
        if not isinstance(raw.get(section), dict) or not isinstance(raw[section].get(needs), str):
            raise _refused(f"no `{needs}:` under `{section}:`")
    return raw


def raw_config(settings: Settings, snapshot: int | None = None) -> dict[str, Any]:
    """feature_store.yaml as a dict, its data paths under ``settings.home``, the online store as
    ``settings`` says, and the lake pinned to ``snapshot``."""
    paths.require()  # every Feast use starts here: an install without the source tree is told so
    raw = _read()
    home = settings.home.resolve()
    raw["registry"] = dict(raw["registry"], path=_reroot(raw["registry"]["path"], home))
    if settings.online_store == "redis":
        # skip_dedup: Feast's Redis store otherwise keeps a stored row unless a write's time is later,
        # and dropped the stream's rewrite of a product's features at a time it had written already
        # (a second tick at that microsecond, in a later batch): online then differed from offline
        # until the next tick. As the SQLite store, each write replaces; one round trip, not two.
        raw["online_store"] = {"type": "redis", "connection_string": settings.redis_url, "skip_dedup": True}
    else:
        if not isinstance(raw["online_store"].get("path"), str):
            raise _refused(
                "no `path:` under `online_store:`, the SQLite online store's file "
                "(TICKSTORE_ONLINE_STORE=redis for Redis)"
            )
        path = as_feast_spells(_reroot(raw["online_store"]["path"], home))
        raw["online_store"] = dict(raw["online_store"], path=path)
    raw["offline_store"] = dict(raw["offline_store"], home=str(home), snapshot=snapshot)
    return raw


def registry_path(settings: Settings) -> str:
    """Where the Feast registry of ``settings.home`` lives (its file's time changes on every apply)."""
    return str(raw_config(settings)["registry"]["path"])


def online_store_file(settings: Settings) -> Path | None:
    """The SQLite online store's file of ``settings.home``; None when the online store is Redis."""
    store = raw_config(settings)["online_store"]
    return Path(store["path"]).resolve() if store["type"] == "sqlite" else None


def registry_stamp(path: str | Path) -> int:
    """The registry file's modification time in ns, 0 while there is none: every apply changes it."""
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return 0


def repo_config(settings: Settings, snapshot: int | None = None) -> RepoConfig:
    """feature_store.yaml, with its data paths under ``settings.home`` and the lake pinned to ``snapshot``."""
    raw = raw_config(settings, snapshot)
    (settings.home.resolve() / "feast").mkdir(parents=True, exist_ok=True)
    try:
        # a mistake in the file was a traceback from wherever Feast met it: its validators resolve
        # the stores' classes, and the provider is looked up only when first used
        config = RepoConfig(**raw)
        get_provider(config)
    except ValidationError as exc:
        raise _refused(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    except FeastError as exc:
        raise _refused(" ".join(str(exc).split())) from None
    config.repo_path = FEATURE_REPO
    return config


def write_cli_config(settings: Settings) -> Path:
    """feature_store.yaml re-rooted under ``settings.home``, written there for Feast's own CLI
    (`feast -f`); it is regenerated on every use, so feature_repo/'s file stays the one to edit."""
    path = settings.home.resolve() / "feast" / "feature_store.yaml"
    header = (
        "# Generated by `tickstore feast` from feature_repo/feature_store.yaml, with its data paths\n"
        "# under TICKSTORE_HOME: edit that file, not this one (this one is rewritten on every run).\n"
    )
    repo_config(settings)  # a mistake in the file named as ours do, not as Feast's traceback
    write_atomically(path, header + yaml.safe_dump(raw_config(settings), sort_keys=False))
    return path


def write_atomically(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: commands starting together never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(partial, path)
