"""Ingest stage: the embedded broker, wire parsing, producers and the Kafka -> lake sink."""
