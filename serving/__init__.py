"""The Flask scoring API: champion model from MLflow, features from the online store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # The app (Flask, MLflow, scikit-learn) is imported when asked for: `tickstore status` reads
    # the online store through serving.features alone, and paid ~2 s for the rest
    if name == "create_app":
        from serving.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
