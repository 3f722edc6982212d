"""tickstore's Feast plugin: `DuckDBSource` and `DuckDBOfflineStore` over the DuckLake."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tickstore_feast.offline_store import DuckDBOfflineStore, DuckDBOfflineStoreConfig
    from tickstore_feast.source import DuckDBSource

__all__ = ["DuckDBOfflineStore", "DuckDBOfflineStoreConfig", "DuckDBSource"]


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
