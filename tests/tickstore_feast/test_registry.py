"""The registry file: its folders are created, and a reader never sees it half-written."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.repo_config import RegistryConfig

from tickstore_feast.registry import DataDirRegistryStore

VIEWS = 50


def registry(views: int) -> RegistryProto:
    proto = RegistryProto()
    for i in range(views):
        view = proto.feature_views.add()
        view.spec.name, view.spec.project = f"view_{i:03d}_" + "x" * 100, "tickstore"
    return proto


def test_the_registry_creates_its_folders_and_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "registry.db"
    store = DataDirRegistryStore(RegistryConfig(path=str(path)), tmp_path)
    store.update_registry_proto(registry(2))
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)
    store.update_registry_proto(registry(3))
    assert path.stat().st_mode & 0o777 == 0o640
    assert len(store.get_registry_proto().feature_views) == 3
    assert [p.name for p in path.parent.iterdir()] == ["registry.db"]  # no temporary files left


def test_readers_never_see_a_half_written_registry(tmp_path: Path) -> None:
    # as the scorer reading it while `feast materialize` records its intervals: Feast's own file store
    # truncates and rewrites in place, and half the reads in this loop found it empty or cut off
    store = DataDirRegistryStore(RegistryConfig(path=str(tmp_path / "registry.db")), tmp_path)
    proto = registry(VIEWS)
    store.update_registry_proto(proto)
    reads, torn, stop = 0, 0, threading.Event()

    def read() -> None:
        nonlocal reads, torn
        while not stop.is_set():
            try:
                complete = len(store.get_registry_proto().feature_views) == VIEWS
            except Exception:  # a cut-off file does not parse
                complete = False
            reads, torn = reads + 1, torn + (not complete)

    reader = threading.Thread(target=read)
    reader.start()
    writes, deadline = 0, time.monotonic() + 1.5
    while time.monotonic() < deadline:
        store.update_registry_proto(proto)
        writes += 1
    stop.set()
    reader.join()
    assert writes > 100 and reads > 100  # the two really overlapped
    assert torn == 0
