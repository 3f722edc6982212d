"""What `tickstore feast plan` adds to Feast's plan: each changed view's SQL as a diff, and the views listed for
Feast's record of their materialization only."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tickstore import feature_sql
from tickstore.settings import Settings
from tickstore_feast.source import DuckDBSource, fingerprints


def _source_lines(view: Any) -> list[str] | None:
    """The text of a view's DuckDB source, its options last; None for another kind of source."""
    source = view.batch_source
    if not isinstance(source, DuckDBSource):
        return None
    text = source.query if source.table is None else f"-- lake table: {source.table}\n"
    assert text is not None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    # the options Feast's plan shows only inside the encoded source
    lines.append(
        f"-- DuckDBSource: lookback {source.lookback.total_seconds():g} s, ties_equal {source.ties_equal}\n"
    )
    return lines


def source_diffs(registered: Iterable[Any], defined: Iterable[Any]) -> list[tuple[str, bool]]:
    """A unified diff for each feature view defined both in the registry and in feature_repo/ whose
    DuckDB source differs (its SQL, its lake table or its options), in feature_repo/'s order, and
    whether the scorer takes the two SQL texts for one definition (`feature_sql.same_definition`:
    comments and layout aside; the source's options don't count).

    `feast plan` prints a changed source as the whole of its encoded options twice, before and
    after, one line each: an edited feature's SQL is there, but not which line of it changed.
    """
    before = {view.name: view for view in registered}
    diffs = []
    for view in defined:
        old_view = before.get(view.name)
        old, new = _source_lines(old_view) if old_view is not None else None, _source_lines(view)
        if old is None or new is None or old == new:
            continue
        diff = "".join(
            difflib.unified_diff(old, new, f"{view.name} (registered)", f"{view.name} (feature_repo/)")
        )
        same = feature_sql.same_definition(
            fingerprints([old_view])[view.name], fingerprints([view])[view.name]
        )
        diffs.append((diff, same))
    return diffs


def record_only(registered: Iterable[Any], defined: Iterable[Any]) -> list[str]:
    """The feature views Feast's plan calls updated although only its record of their materialized
    intervals differs (the registry has one, a definition never does): after any `materialize`,
    `feast plan` lists every materialized view as updated, feature_repo/ unchanged. ``defined`` must
    have been through Feast's inference (entity columns), as its plan does."""
    before = {view.name: view for view in registered}
    names = []
    for view in defined:
        old = before.get(view.name)
        if old is None or not old.materialization_intervals or old == view:
            continue
        unrecorded = copy.copy(old)
        unrecorded.materialization_intervals = []
        if unrecorded == view:
            names.append(view.name)
    return names


def review(settings: Settings) -> tuple[list[str], list[tuple[str, bool]]]:
    """For `tickstore feast plan`: :func:`record_only` and :func:`source_diffs` of feature_repo/
    against the registry under ``settings.home`` (nothing while there is no registry)."""
    from feast import FeatureView
    from feast.inference import update_feature_views_with_inferred_features_and_entities
    from feast.infra.provider import get_provider

    from tickstore_feast.config import registry_path
    from tickstore_feast.repo import feature_store, repo_modules, repo_objects

    if not Path(registry_path(settings)).exists():
        return [], []
    store = feature_store(settings, apply=False)
    registered = store.list_feature_views()
    defined = [o for o in repo_objects(repo_modules()) if isinstance(o, FeatureView)]
    # the entity columns Feast's plan infers before it compares
    update_feature_views_with_inferred_features_and_entities(
        get_provider(store.config), defined, store.list_entities(), store.config
    )
    return record_only(registered, defined), source_diffs(registered, defined)
