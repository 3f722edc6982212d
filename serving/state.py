"""What one app instance holds: settings, the model holder, the online feature reader (made lazily)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from flask import current_app

from serving.features import OnlineFeatures
from serving.model import ModelHolder
from tickstore.settings import Settings
from tickstore_feast.config import registry_path, registry_stamp
from tickstore_feast.sqlite_online import file_identity

log = logging.getLogger(__name__)

REGISTRY_CHECK_S = 1.0  # how often a request may look at the registry file's time (one stat)


@dataclass
class ServingState:
    settings: Settings
    models: ModelHolder
    _features: OnlineFeatures | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _registry: str = ""
    _registry_stamp: int = 0
    _online_file: tuple[int, int] | None = None  # the SQLite online store file the reader opened
    _checked: float = 0.0
    _rebuilding: bool = False
    _unreadable: int = 0  # the registry (its stamp) the last rebuild could not read: said once
    _stop: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    def features(self) -> OnlineFeatures:
        """The online reader; built on first use so the app starts before `feast apply` has run, and
        built again, beside the requests, when the registry changes or the SQLite online store file
        was replaced (removed and made again: the way to empty it).

        A reader holds the service's views and feature names as they were when it was built: after
        `feast apply` added a feature that a retrained model reads, the scorer handed the model None
        for it until restarted. The new reader is built in a thread while requests go on with the old
        one: every `tickstore stream` start, training run or dataset build applies the feature repo,
        and each worker's next request had paid for the rebuild (~6 ms).
        """
        now = time.monotonic()
        if self._features is not None and now - self._checked < REGISTRY_CHECK_S:
            return self._features
        with self._lock:
            self._checked = now
            stamp = self._stamp()
            if self._features is None:
                self._features = OnlineFeatures(self.settings)
                self._registry_stamp = stamp
                self._online_file = file_identity(self._features.store)
            elif not stamp:
                # removed (the way to replace a damaged one): a reader built now would have Feast write
                # an empty registry, and fail on it, every second until one was applied
                if self._registry_stamp:
                    log.warning(
                        "serving: the feature registry %s was removed: reading as before; `tickstore feast "
                        "apply` registers feature_repo/'s views again",
                        self._registry,
                    )
                    self._registry_stamp = 0
            elif (
                stamp != self._registry_stamp or file_identity(self._features.store) != self._online_file
            ) and not self._rebuilding:
                # a removed online store file too (the way to empty it): Feast's connection kept
                # reading the removed one, the features it served frozen until they went stale
                self._rebuilding = True
                threading.Thread(target=self._rebuild, args=(stamp,), name="registry", daemon=True).start()
        return self._features

    def watch_registry(self) -> None:
        """Look at the registry every ``REGISTRY_CHECK_S`` in a daemon thread, not only on requests: a
        worker that had served nothing since a `feast apply` answered its next request from the views
        as they were (a dropped view, a feature the model lost, SQL changed back), then rebuilt."""
        self._watcher = threading.Thread(target=self._watch, name="registry-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop this app's threads (the model's reloads, the registry's watch), for an app made in a
        process that goes on: a test's went on asking MLflow's process-wide store, by then another
        test's, and SQLite made an empty file where that test had just removed its store."""
        self._stop.set()
        self.models.close()
        if self._watcher is not None:
            self._watcher.join(timeout=30)

    def _watch(self) -> None:
        while not self._stop.wait(REGISTRY_CHECK_S):
            if self._features is not None:  # the first reader is a request's to build, and to fail
                try:
                    self.features()
                except Exception as exc:  # a registry mid-replace, say: the next look, or a request, retries
                    log.debug("serving: registry check failed: %s", exc)

    def _rebuild(self, stamp: int) -> None:
        """Swap in a reader of the registry as it is now; keep the old one if it can't be read."""
        try:
            fresh: OnlineFeatures | None = OnlineFeatures(self.settings)
        except Exception as exc:  # a damaged registry, a locked store: the thread died of those, and the
            # scorer, left "rebuilding", never read the registry again. Tried again each second, said once.
            if stamp != self._unreadable:
                log.warning(
                    "serving: the changed feature registry cannot be read (%s); reading as before", exc
                )
            self._unreadable = stamp
            fresh = None
        with self._lock:
            if fresh is not None:
                self._features, self._registry_stamp = fresh, stamp
                self._online_file = file_identity(fresh.store)
            self._rebuilding = False

    def _stamp(self) -> int:
        if not self._registry:
            self._registry = registry_path(self.settings)
        return registry_stamp(self._registry)


def state() -> ServingState:
    return current_app.extensions["tickstore"]  # type: ignore[no-any-return]
