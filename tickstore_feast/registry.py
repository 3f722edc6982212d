"""Feast's file registry, creating the data directory it lives in."""

from __future__ import annotations

from typing import Any

from feast.infra.registry.file import FileRegistryStore


class DataDirRegistryStore(FileRegistryStore):  # type: ignore[misc]
    """The file registry of feature_store.yaml, which also creates its folder's parents.

    Feast's own store creates only the last folder (`.tickstore/feast`), so `feast apply` in a fresh
    clone, before anything made `.tickstore`, failed with FileNotFoundError.
    """

    def update_registry_proto(self, registry_proto: Any) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        super().update_registry_proto(registry_proto)
