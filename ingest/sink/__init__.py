"""The Kafka -> DuckLake tick sink."""

from ingest.sink.consumer import Sink
from ingest.sink.stats import SinkStats
from ingest.sink.writer import BatchResult, LakeWriter

__all__ = ["BatchResult", "LakeWriter", "Sink", "SinkStats"]
