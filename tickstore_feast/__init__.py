"""tickstore's Feast plugin: `DuckDBSource` and `DuckDBOfflineStore` over the DuckLake."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tickstore import metrics_dir

if TYPE_CHECKING:
    from tickstore_feast.offline_store import DuckDBOfflineStore, DuckDBOfflineStoreConfig
    from tickstore_feast.source import DuckDBSource

__all__ = ["DuckDBOfflineStore", "DuckDBOfflineStoreConfig", "DuckDBSource"]

# Before any module of the package imports Feast: its metrics folder named after this process, removed
# at its exit, or by the next tickstore process if it is killed (a notebook's kernel, a script's
# `feature_store(Settings())`: Feast's own /tmp/feast_metrics_<random> stayed). Nothing when Feast is
# imported already (the plain `feast` CLI) or the folder is the user's.
metrics_dir.claim()


def __getattr__(name: str) -> Any:
    # Imported when first asked for: importing the package itself must not import Feast (see
    # quick_import, which has to run before Feast's first import to help)
    if name in ("DuckDBOfflineStore", "DuckDBOfflineStoreConfig"):
        from tickstore_feast import offline_store

        return getattr(offline_store, name)
    if name == "DuckDBSource":
        from tickstore_feast.source import DuckDBSource

        return DuckDBSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
