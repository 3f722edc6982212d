"""Open the Feast feature repo (`feature_repo/`) for a given tickstore data directory."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import sys
import traceback
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from feast import Entity, FeatureService, FeatureStore, FeatureView, RepoConfig

from tickstore import lake
from tickstore.errors import TickstoreError
from tickstore.paths import FEATURE_REPO
from tickstore.settings import Settings
from tickstore_feast import sqlite_online
from tickstore_feast.config import repo_config, write_atomically

if TYPE_CHECKING:
    from tickstore_feast.source import DuckDBSource


def _load(path: Path, name: str) -> ModuleType:
    """The Python file ``path``, executed as a fresh module called ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def definitions() -> ModuleType:
    """feature_repo/features.py as a module (the entity, feature views and services)."""
    return _load(FEATURE_REPO / "features.py", "tickstore_feature_repo")


def repo_modules(folder: Path = FEATURE_REPO) -> list[ModuleType]:
    """Every Python file of the feature repo, imported, as `feast apply` reads them (``.feastignore``
    honoured): definitions may be split over several files, which may import each other."""
    import sys

    from feast.repo_operations import get_repo_files

    before = set(sys.modules)
    sys.path.insert(0, str(folder))  # `from features import product` in a second file, as under Feast
    try:
        modules = [
            _load(path, f"tickstore_feature_repo_{i}") for i, path in enumerate(get_repo_files(folder))
        ]
    except Exception as exc:  # the user's own code: where it failed, not forty lines of our frames
        where = repo_error(exc, folder)
        if where is None:
            raise
        raise TickstoreError(where) from exc
    finally:
        sys.path.remove(str(folder))
        # what the files imported from each other is dropped again: a later read (an edited file, or
        # another repo's copy) must import it afresh, not get this one from sys.modules
        for name in set(sys.modules) - before:  # not every module: resolving thousands cost ~90 ms
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if origin and Path(origin).resolve().is_relative_to(folder.resolve()):
                del sys.modules[name]
    return modules


def repo_error(exc: BaseException, folder: Path = FEATURE_REPO) -> str | None:
    """What to tell a user whose feature repo file raised ``exc``: the file, the line and the error,
    and how to see the whole traceback; None when ``exc`` did not come from a file in ``folder``."""
    root = folder.resolve()
    if isinstance(exc, SyntaxError) and exc.filename:
        where: tuple[str, int | None] | None = (exc.filename, exc.lineno)
    else:
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if Path(f.filename).resolve().is_relative_to(root)
        ]
        where = (frames[-1].filename, frames[-1].lineno) if frames else None
    if where is None or not Path(where[0]).resolve().is_relative_to(root):
        return None
    path = Path(where[0]).resolve().relative_to(root.parent)
    return f"{path}, line {where[1]}: {type(exc).__name__}: {exc}\n(`python {shlex.quote(str(path))}` shows the whole traceback)"


KINDS = (("entity", Entity), ("view", FeatureView), ("service", FeatureService))


def repo_objects(modules: list[ModuleType]) -> list[Entity | FeatureView | FeatureService]:
    """Every entity, feature view and feature service ``modules`` define, once each by name.

    A file importing another's objects gets equal copies of them, which count once; two different
    definitions under one name are an error, as under `feast apply`.
    """
    found: dict[tuple[str, str], Entity | FeatureView | FeatureService] = {}
    for module in modules:
        for attr in dir(module):
            obj = getattr(module, attr)
            kind = next((k for k, t in KINDS if isinstance(obj, t)), None)
            if kind is None:
                continue
            seen = found.setdefault((kind, obj.name), obj)
            if seen is not obj and seen != obj:
                raise TickstoreError(
                    f"two different {kind} definitions are named {obj.name!r} in feature_repo/: rename one"
                )
    return list(found.values())


def apply_repo(store: FeatureStore, objects: list[Entity | FeatureView | FeatureService]) -> None:
    """Register ``objects`` and drop the feature views and services no longer among them, as
    `feast apply` does: the repo is the truth. A fixed list was applied before, so a view added to
    features.py was never registered by tickstore (a service naming it failed) and a removed one
    stayed, computed by the stream for nothing."""
    views = {o.name for o in objects if isinstance(o, FeatureView)}
    services = {o.name for o in objects if isinstance(o, FeatureService)}
    stale: list[Any] = [v for v in store.list_feature_views() if v.name not in views]
    stale += [s for s in store.list_feature_services() if s.name not in services]
    _bind_sql(store, objects)
    to_apply: list[Any] = list(objects)
    store.apply(to_apply, objects_to_delete=stale, partial=not stale)
    _record_online_tables(store)
    _respell_recorded_tables(store)


def _record_online_tables(store: FeatureStore) -> None:
    """Record the online tables in the registry as `feast apply` does: `FeatureStore.apply` makes
    them but records nothing, so after any tickstore command Feast's plan (and apply) announced
    "Created sqlite table" for every view, with nothing to create. Written only when it changed."""
    if not store._should_use_plan():  # Feast's CLI records them only for this (sqlite) online store
        return
    planned = store._get_provider().plan_infra(store.config, store.registry.proto())
    if planned.to_proto() != store.registry.get_infra(store.project).to_proto():
        store.registry.update_infra(planned, store.project, commit=True)


def _bind_sql(store: FeatureStore, objects: list[Entity | FeatureView | FeatureService]) -> None:
    """Bind each view's SQL against the lake, as `feast apply` does (`FeatureStore.apply` does not):
    a mistake in it is named now, by its source, not by a traceback from the first query that reads
    it. Without a lake yet there is nothing to bind against (the sink makes it)."""
    views = _bind_and_check_columns(store.config, objects)
    if views is not None:
        check_ties(store.config, join_keys(objects), views)


def _bind_and_check_columns(
    config: RepoConfig, objects: list[Entity | FeatureView | FeatureService]
) -> list[tuple[FeatureView, DuckDBSource]] | None:
    """The views of ``objects`` over a DuckDB source, each bound against the lake and `check_columns`-ed;
    None when there is no lake yet."""
    from tickstore.lake import LakeError
    from tickstore_feast.source import DuckDBSource

    views = [
        (o, o.batch_source)
        for o in objects
        if isinstance(o, FeatureView) and isinstance(o.batch_source, DuckDBSource)
    ]
    try:
        for view, source in views:
            check_columns(view, source, [name for name, _ in source.get_table_column_names_and_types(config)])
    except LakeError:
        return None
    return views


def check_columns(view: FeatureView, source: DuckDBSource, columns: list[str]) -> None:
    """Refuse a view whose schema names a feature (or a time column) its source does not give: it was
    registered, and the first training set or materialization failed with DuckDB's binder traceback."""
    given = {source.field_mapping.get(c, c) for c in columns}  # features are named after the mapping
    missing = [f.name for f in view.features if f.name not in given]
    them = "them" if len(missing) > 1 else "it"
    fixes = [f"add {them} to the SELECT or drop {them} from the view's schema"] if missing else []  # noqa: S608 - a message
    if source.timestamp_field not in columns:
        missing.append(source.timestamp_field)
        fixes.append(
            f"give the source the time column it has as timestamp_field=, not {source.timestamp_field!r}"
        )
    if missing:
        raise TickstoreError(
            f"feature view {view.name!r} names {', '.join(map(repr, missing))}, which its source "
            f"{source.name!r} does not give: {'; '.join(fixes)} (feature_repo/). "
            f"The source gives: {', '.join(columns)}"
        )


def loaded_objects(folder: Path | None) -> list[Entity | FeatureView]:
    """The entities and feature views in the modules imported from ``folder``: where `feast apply`,
    having imported the repo's files, found its objects too (Feast's `parse_repo`)."""
    if folder is None:
        return []
    root = os.path.join(os.path.abspath(folder), "")
    found: dict[int, Entity | FeatureView] = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file or not os.path.abspath(file).startswith(root):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Entity | FeatureView):
                found[id(value)] = value
    return list(found.values())


def join_keys(objects: list[Any]) -> dict[str, str]:
    """Each entity of ``objects`` by name: its join key."""
    return {o.name: o.join_key for o in objects if isinstance(o, Entity)}


def check_ties(
    config: RepoConfig, join_keys: dict[str, str], views: list[tuple[FeatureView, DuckDBSource]]
) -> None:
    """Refuse a view declaring equal ties whose rows over a sample of the lake hold a tie that differs
    (`DuckDBSource.widest_tie`): the point-in-time join takes any row of a tie, so unequal ones would
    make training sets depend on the join's order.

    Once per definition (~0.1 s a view, plus ~0.2 s to find the newest tie where the newest minutes
    hold none; every command applies the repo at its start), remembered beside the registry: not by
    the registry itself, which `feast apply --skip-source-validation` also writes, unchecked. A
    sample without a tie checks nothing, so it is not remembered."""
    from tickstore_feast.source import TIES_CHECKED

    record = Path(config.registry.path).parent / "ties_checked.json"
    try:
        checked = set(json.loads(record.read_text()))
    except (OSError, ValueError):
        checked = set()
    passed = set()
    tie_at: dict[str | None, datetime | None] = {}
    for view, source in views:
        definition = hashlib.sha256(f"{view.name}\n{source.table}\n{source.query}".encode()).hexdigest()
        if not source.ties_equal or definition in checked:
            continue
        keys = [join_keys.get(e, e) for e in view.entities]
        tie = source.widest_tie(config, keys)
        if tie is not None and tie["n_rows"] < 2:  # none among the newest rows: look where one is
            if source.table not in tie_at:  # the SQL sources all read the lake's ticks: one search
                tie_at[source.table] = source.newest_tie(config)
            if tie_at[source.table] is not None:
                tie = source.widest_tie(config, keys, until=tie_at[source.table])
        if tie is None or tie["n_rows"] < 2:
            continue  # no tie in the sample (or no rows yet): nothing to check, till next time
        if tie["n_distinct"] > 1:
            at = ", ".join(f"{k}={v}" for k, v in tie.items() if k not in ("n_rows", "n_distinct"))
            raise TickstoreError(
                f"feature view {view.name!r} declares ties_equal=True, but its rows at {at} differ "
                f"(in a sample of the lake: its newest {TIES_CHECKED.total_seconds() / 60:g} minutes of "
                "data, or those up to its newest tie): rows of one key at one time must carry equal "
                "features for that (a window whose frame ends at the current row instead of its last peer "
                "does not). Remove ties_equal=True from its DuckDBSource (training sets then pick one row "
                "of a tie by its values), or fix the SQL."
            )
        passed.add(definition)
    if passed:
        write_atomically(record, json.dumps(sorted(checked | passed)))


def _respell_recorded_tables(store: FeatureStore) -> None:
    """Record the SQLite online tables under the path spelling this config plans, where the registry
    has the same file spelled otherwise (by an older tickstore): else the next `feast apply` drops
    them (see `config.as_feast_spells`)."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteTable

    if store.config.online_store.type != "sqlite":
        return
    planned = SqliteOnlineStore._get_db_path(store.config)
    infra = store.registry.get_infra(store.project)
    moved = [
        o
        for o in infra.infra_objects
        if isinstance(o, SqliteTable)
        and o.path != planned
        and os.path.realpath(o.path) == os.path.realpath(planned)
    ]
    for table in moved:
        table.path = planned
    if moved:
        store.registry.update_infra(infra, store.project, commit=True)


def feature_store(
    settings: Settings, snapshot: int | None = None, apply: bool = True, online: bool = True
) -> FeatureStore:
    """A FeatureStore on the lake below ``settings.home``; with ``apply`` feature_repo/'s definitions
    are registered (and the ones removed from it dropped), as `feast apply` would. Without ``online``
    the SQLite online store's file is left as it is, not made (for a reader that only looks)."""
    lake.refuse_stray_home(settings)
    config = repo_config(settings, snapshot)
    store = FeatureStore(repo_path=str(FEATURE_REPO), config=config)
    sqlite = config.online_store.type == "sqlite" and online
    if sqlite:
        sqlite_online.open_file(store)  # a damaged file named before Feast's apply writes to it
    if apply:
        apply_repo(store, repo_objects(repo_modules()))
    if sqlite:
        sqlite_online.prepare(store)
    return store
