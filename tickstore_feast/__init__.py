"""tickstore's Feast plugin: `DuckDBSource` and `DuckDBOfflineStore` over the DuckLake."""

from tickstore_feast.offline_store import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from tickstore_feast.source import DuckDBSource

__all__ = ["DuckDBOfflineStore", "DuckDBOfflineStoreConfig", "DuckDBSource"]
