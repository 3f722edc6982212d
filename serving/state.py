"""What one app instance holds: settings, the model holder, the online feature reader (made lazily)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import current_app

from serving.features import OnlineFeatures
from serving.model import ModelHolder
from tickstore.settings import Settings


@dataclass
class ServingState:
    settings: Settings
    models: ModelHolder
    _features: OnlineFeatures | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def features(self) -> OnlineFeatures:
        """The online reader; built on first use so the app starts before `feast apply` has run."""
        if self._features is None:
            with self._lock:
                if self._features is None:
                    self._features = OnlineFeatures(self.settings)
        return self._features


def state() -> ServingState:
    return current_app.extensions["tickstore"]  # type: ignore[no-any-return]
