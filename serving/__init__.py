"""The Flask scoring API: champion model from MLflow, features from the online store."""

from serving.app import create_app

__all__ = ["create_app"]
