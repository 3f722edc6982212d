"""Feast's file registry, creating the data directory it lives in and replacing the file atomically."""

from __future__ import annotations

import logging
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

from feast.infra.registry.file import FileRegistryStore
from feast.utils import _utc_now
from google.protobuf.message import DecodeError

from tickstore.errors import TickstoreError
from tickstore_feast.config import as_feast_spells

log = logging.getLogger(__name__)


class RegistryDamaged(TickstoreError):
    """The registry file is no registry protobuf can read."""


class DataDirRegistryStore(FileRegistryStore):  # type: ignore[misc]
    """The file registry of feature_store.yaml: parents created, and never seen half-written.

    Feast's own store creates only the last folder (`.tickstore/feast`), so `feast apply` in a fresh
    clone, before anything made `.tickstore`, failed with FileNotFoundError. It also rewrites the file
    in place (truncate, then write), so a scorer or the stream reading it while `feast materialize`
    or `feast apply` wrote found an empty or cut-off registry: half of all reads during a loop of
    writes, measured. Here a complete file is written beside it and renamed over it.
    """

    def __init__(self, registry_config: Any, repo_path: Path) -> None:
        super().__init__(registry_config, repo_path)
        home = os.environ.get("TICKSTORE_HOME")
        # a relative path is the yaml as written, read by Feast's own CLI; tickstore passes absolute ones
        if home and not Path(registry_config.path).is_absolute():
            default = self._filepath.resolve().parent.parent
            if Path(home).resolve() != default:
                log.warning(
                    "TICKSTORE_HOME=%s is set, but the feast CLI uses feature_store.yaml's paths (under %s): "
                    "for the data under TICKSTORE_HOME, run the same command as `tickstore feast ...`",
                    home,
                    default,
                )

    def get_registry_proto(self) -> Any:
        try:
            proto = super().get_registry_proto()
        except DecodeError as exc:
            # cut short or overwritten: the stream, the scorer, status and dataset build each ended in
            # protobuf's traceback. It holds what feature_repo/ defines, so it can be made again.
            raise RegistryDamaged(
                f"the feature registry {self._filepath.resolve()} is damaged ({exc}): remove it, and "
                "`tickstore feast apply` (or `tickstore stream`) registers feature_repo/'s views again"
            ) from exc
        _follow_home(proto, self._filepath.parent)
        _forget_dropped(proto)
        return proto

    def update_registry_proto(self, registry_proto: Any) -> None:
        # what Feast's own write stamps on every version
        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(_utc_now())
        folder = self._filepath.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{self._filepath.name}.")
        try:
            # mkstemp makes the file private; keep the registry's mode (Feast's write gives 0o644)
            mode = self._filepath.stat().st_mode & 0o777 if self._filepath.exists() else 0o644
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as file:
                file.write(registry_proto.SerializeToString())
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self._filepath)
        except BaseException:
            os.unlink(temporary)
            raise


def _follow_home(proto: Any, folder: Path) -> None:
    """Point the SQLite online tables ``proto`` records at the online store beside the registry in
    ``folder``, where they name one elsewhere: the home's, where it was before it was moved or copied.

    Feast records each table with its database's path, and opens that path as it reads the record: a
    moved home's every command that applies the repo ended in "No such file or directory" for the old
    home's folder, and a copy's opened the original home's store. tickstore keeps
    the online store beside the registry (feature_store.yaml, re-rooted under TICKSTORE_HOME), so the
    registry's own folder is where they are, spelled as Feast's CLI spells them (`config.as_feast_spells`):
    spelled otherwise, Feast's plan took each for "updated", and `tickstore feast apply` on a copied
    home dropped every online table.
    """
    here = folder.resolve()
    for item in proto.infra.infra_objects:
        if item.WhichOneof("infra_object") != "sqlite_table":
            continue
        recorded = Path(item.sqlite_table.path)
        if Path(os.path.realpath(recorded)).parent != here:
            item.sqlite_table.path = as_feast_spells(str(folder / recorded.name))


def _forget_dropped(proto: Any) -> None:
    """Drop the SQLite online tables ``proto`` records for views it no longer registers.

    `feast teardown` and `feast delete VIEW` drop a view's table and its registration but leave the
    table recorded: the next `feast apply` of the view planned no table to make ("No changes to
    infrastructure"), and `feast materialize` ended in "no such table: tickstore_ticks_10s".
    """
    views = (*proto.feature_views, *proto.stream_feature_views, *proto.label_views)
    names = {f"{v.spec.project}_{v.spec.name}" for v in views}
    dropped = [
        item
        for item in proto.infra.infra_objects
        if item.WhichOneof("infra_object") == "sqlite_table"
        # Feast names a table <project>_<view>, or <project>_<view>_v<N> with versioning on
        and re.sub(r"_v\d+$", "", item.sqlite_table.name) not in names
        and item.sqlite_table.name not in names
    ]
    for item in dropped:
        proto.infra.infra_objects.remove(item)
