"""The one typed settings object for every tickstore stage (env prefix ``TICKSTORE_``)."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickstore import net
from tickstore.text import without_passwords
from tickstore.values import parse_cpus, websocket_url

# The longest any interval setting may be: past it, a time step overflowed where it was used (an
# infinite snapshot retention stopped the sink with a traceback at its first compaction; a reload
# period past threading's TIMEOUT_MAX, ~292 years, stopped the scorer's reload thread)
LONGEST_S = 100 * 365 * 86400.0
# librdkafka's ranges for the properties these settings become (max.poll.interval.ms, and
# message.max.bytes, which is the setting plus 1 KiB of headroom): named here, the error names the
# setting, where librdkafka's named its own property and sent the user to TICKSTORE_KAFKA_CONFIG
MAX_POLL_INTERVAL_MS = 86_400_000
MAX_MESSAGE_BYTES = 1_000_000_000 - 1024
KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
# the tracking stores MLflow 3 opens (a file store it refuses: "in maintenance mode")
MLFLOW_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


class Settings(BaseSettings):
    """Every knob tickstore reads, from ``TICKSTORE_*`` environment variables or keyword arguments.

    All state lives below ``home`` so that a test, or a second instance, gets its own by pointing
    ``TICKSTORE_HOME`` somewhere else.
    """

    model_config = SettingsConfigDict(env_prefix="TICKSTORE_", extra="forbid")

    home: Path = Field(Path(".tickstore"), description="Data directory holding all state.")

    # Kafka
    kafka_bootstrap: str | None = Field(
        None,
        description="bootstrap.servers of a real Kafka; unset means the embedded broker on loopback.",
    )
    kafka_config: dict[str, str | int | float | bool] = Field(
        {},
        description="More librdkafka properties for every Kafka client, as JSON: security for a real "
        'Kafka, e.g. `{"security.protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN", "sasl.username": '
        '"KEY", "sasl.password": "SECRET"}`. tickstore\'s own (group.id, offsets, timeouts) win.',
    )
    broker_port: int = Field(19092, ge=1, le=65535, description="Port of the embedded broker on 127.0.0.1.")
    topic_raw: str = Field("ticks.raw", description="Topic the producers write raw wire messages to.")
    topic_dlq: str = Field("ticks.dlq", description="Topic the sink copies rejected messages to.")
    topic_partitions: int = Field(3, ge=1, description="Partitions given to topics tickstore creates.")
    rebalance_timeout_ms: int = Field(
        6000,
        ge=1,
        le=MAX_POLL_INTERVAL_MS,
        description="max.poll.interval.ms of consumers; Tansu makes every group join wait this long.",
    )
    max_message_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1,
        le=MAX_MESSAGE_BYTES,
        description="Largest message the producers send and consumers fetch.",
    )

    # Sink
    sink_group: str = Field("tickstore-sink", description="Consumer group of the sink.")
    sink_batch_rows: int = Field(
        50_000, ge=1, description="A micro-batch is flushed at this many messages..."
    )
    sink_batch_ms: int = Field(1000, ge=1, description="...or when its oldest message is this old.")
    sink_max_tick_bytes: int = Field(
        1024 * 1024, ge=1, description="Messages larger than this are rejected unparsed (a ticker is < 2 KB)."
    )
    sink_idle_ms: int = Field(
        1500, ge=0, description="With --until-idle: stop after being caught up this long."
    )
    sink_inline_rows: int = Field(
        100,
        ge=0,
        description="Batches of at most this many rows wait in the lake's catalog for the next compaction "
        "to write them out together, instead of a Parquet file each (0: a file each).",
    )
    compact_every_s: float = Field(
        300.0, gt=0, le=LONGEST_S, description="Merge small lake files at most this often."
    )
    snapshot_retention_days: float = Field(
        7.0,
        ge=0,
        le=LONGEST_S / 86400,
        description="Lake snapshots (time travel) kept at least this long before cleanup.",
    )
    log_every_s: float = Field(
        5.0, gt=0, le=LONGEST_S, description="Seconds between sink progress log lines."
    )

    # DuckDB
    # Measured on 10M ticks, `ticks_60s` in a fresh process, 2 cores: 12.0-12.8 s without the pool,
    # 10.8-11.0 s with it (100%), 11.1 s at 25%; kernel time 4.7-5.5 s -> 2.4-2.6 s.
    duckdb_block_pool: str = Field(
        "100%",
        description="Memory DuckDB's block allocator keeps for reuse on lake connections (`0` off, a "
        "share of DuckDB's memory limit such as `100%`, or a size such as `8GB`): reused blocks skip "
        "the kernel's page faults, but a process keeps what it used at its peak until it exits.",
    )

    # Producers
    data_dir: Path | None = Field(
        None,
        description="Recorded NDJSON for the demo; unset means ../shared/data/coinbase if it exists, "
        "else the simulator.",
    )

    coinbase_exchange_url: str = Field(
        "wss://ws-feed.exchange.coinbase.com", description="Exchange ws-feed endpoint."
    )
    coinbase_advanced_url: str = Field(
        "wss://advanced-trade-ws.coinbase.com", description="Advanced Trade WebSocket endpoint."
    )
    coinbase_stale_s: float = Field(
        30.0,
        gt=0,
        le=LONGEST_S,
        description="Reconnect when the feed sends nothing (not even a heartbeat) this long.",
    )
    archive_rotate_mb: float = Field(
        64.0, gt=0, le=1e9, description="Raw archive files rotate at this size..."
    )
    archive_rotate_s: float = Field(3600.0, gt=0, le=LONGEST_S, description="...or after this many seconds.")

    mlflow_uri: str | None = Field(
        None, description="MLflow tracking URI; unset means SQLite + artifacts under TICKSTORE_HOME/mlflow."
    )

    # Online store and stream freshness
    online_store: Literal["sqlite", "redis"] = Field(
        "sqlite", description="Feast online store: SQLite under TICKSTORE_HOME/feast, or Redis."
    )
    redis_url: str = Field(
        "127.0.0.1:6379",
        description="Redis when online_store=redis: host:port[,db=N], or a redis:// URL (rediss:// for "
        "TLS; a CA of your own through SSL_CERT_FILE).",
    )
    stream_group: str = Field("tickstore-stream", description="Consumer group of `tickstore stream`.")
    stream_batch_ms: int = Field(
        100, ge=1, description="Longest wait for a message before the stream does its housekeeping."
    )
    stream_batch_rows: int = Field(
        5000,
        ge=1,
        # a batch is processed without a poll: 1.5M messages took ~35 s in batches of 5,000 here, so a
        # batch of a million would outlast max.poll.interval.ms and take the stream out of its group
        # (as a big batch's write did the sink's); librdkafka's own limit for one consume is a million
        le=100_000,
        description="Most messages per stream batch (a batch is whatever has arrived, up to this).",
    )
    # measured on 2 cores, stream and scorer side by side: p99 at 500 requests/s 13.4-16.9 ms at nice 0,
    # 6.1-7.9 ms at nice 10, and freshness no worse (p99 110-166 against 118-167 ms)
    stream_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Niceness `tickstore stream` runs at: on shared cores the scorer's requests go first.",
    )
    # Niceness orders the two, but on shared cores the stream's SQL still slows the scorer's requests:
    # 100 req/s p99 6.9-8.1 ms unpinned, 3.5-5.5 ms with stream and scorer on a core each (measured)
    stream_cpus: str = Field(
        "",
        description="CPUs `tickstore stream` runs on, as taskset lists them (`1`, `0,2-3`); empty: any.",
    )

    # Scoring API
    serve_host: str = Field("127.0.0.1", description="Address `tickstore serve` listens on.")
    serve_port: int = Field(8000, ge=1, le=65535, description="Port `tickstore serve` listens on.")
    serve_model_uri: str = Field(
        "models:/tickstore-volatility@champion",
        description="MLflow model the scorer loads; an @alias URI is reloaded when the alias moves.",
    )
    serve_reload_s: float = Field(
        10.0,
        gt=0,
        le=LONGEST_S,
        description="How often the scorer checks whether the alias moved (and tries again a model that "
        "failed to load).",
    )
    serve_workers: int | None = Field(
        None,
        ge=1,
        description="gunicorn worker processes (production mode); unset: one per CPU of "
        "TICKSTORE_SERVE_CPUS when that is set, else 4.",
    )
    serve_threads: int = Field(4, ge=1, description="Threads per gunicorn worker (production mode).")
    serve_cpus: str = Field(
        "", description="CPUs `tickstore serve` runs on, as taskset lists them (`0`, `0-2`); empty: any."
    )

    def scorer_workers(self) -> int:
        """How many gunicorn workers `tickstore serve` starts: serve_workers, else by where it runs.

        On cores of its own (serve_cpus), one worker per core: a worker is one GIL, and more take
        turns on the core. At 500 req/s, four on one pinned core gave p99 13-167 ms quiet and
        14-345 ms while the stream wrote (three runs), one worker 5.1-7.1 and 6.5-53 ms (four). On
        cores shared with the stream and everything else, 4 on 2 cores did better than 2 (p99 at
        500 req/s while the stream writes 12.5-14.5 against 10.3-24.4 ms). Measured with
        bench/serve.py on the Intel Xeon of 2026-12-01 (docs/benchmarks.md).
        """
        if self.serve_workers is not None:
            return self.serve_workers
        cpus = parse_cpus(self.serve_cpus)
        return len(cpus) if cpus else 4

    @field_validator("home", mode="before")
    @classmethod
    def _default_home_when_empty(cls, value: object) -> object:
        # TICKSTORE_HOME= (set but empty) means the default: as a path '' is the current folder, and
        # the lake, registry and MLflow store were spilled into wherever the command ran
        return Path(".tickstore") if isinstance(value, str) and not value.strip() else value

    @field_validator("serve_workers", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # TICKSTORE_SERVE_WORKERS= (set but empty) means the default, as the CPU lists' empty does
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("duckdb_block_pool")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        # Goes into a SET statement (DuckDB binds no parameters there): only a number and a unit.
        if not re.fullmatch(r"\d+(\.\d+)?\s*(%|B|[KMGT]i?B)?", value.strip(), re.IGNORECASE):
            raise ValueError(f"{value!r} is not a size: use 0, a share such as 100%, or a size such as 8GB")
        return value.strip()

    @field_validator("topic_raw", "topic_dlq")
    @classmethod
    def _topic(cls, value: str) -> str:
        # Kafka's rule for a topic name; the embedded broker took any, a real Kafka refuses them, and an
        # empty one stopped the sink with librdkafka's "Invalid argument" traceback
        if not KAFKA_TOPIC.fullmatch(value) or value in (".", ".."):
            raise ValueError(f"{value!r} is no Kafka topic name: 1 to 249 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("sink_group", "stream_group")
    @classmethod
    def _group(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a consumer group needs a name")
        return value

    @field_validator("mlflow_uri")
    @classmethod
    def _mlflow_store(cls, value: str | None) -> str | None:
        # MLflow 3 refuses a file store ('./mlruns', file://) and reads a bare word as one: a traceback
        # from every command that reads the models. Empty: the local store, as unset.
        if value is None or not value.strip():
            return None
        scheme = urlsplit(value.strip()).scheme.split("+")[0]
        if scheme not in MLFLOW_SCHEMES:
            raise ValueError(
                f"{value!r} is no MLflow store tickstore can use: give sqlite:///PATH, a tracking server's "
                "http(s)://HOST:PORT, or a database URL (postgresql://, mysql://, mssql://); unset, the "
                "store is SQLite under TICKSTORE_HOME/mlflow"
            )
        return value.strip()

    @field_validator("coinbase_exchange_url", "coinbase_advanced_url")
    @classmethod
    def _websocket(cls, value: str) -> str:
        return websocket_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_connection(cls, value: str) -> str:
        # Feast takes host:port[,option=value...]; the redis:// URL most tools print is turned into that
        # (it reached redis-py as host "redis" and port "//127.0.0.1", a traceback at the first read).
        value = value.strip()
        if value.startswith(("redis://", "rediss://")):
            url = urlsplit(value)
            if not url.hostname:
                raise ValueError(
                    f"{without_passwords(value)!r} names no host: use redis://HOST:PORT/DB or HOST:PORT"
                )
            parts = [f"{url.hostname}:{url.port or 6379}"]
            if url.password:
                parts.append(f"password={url.password}")
            if url.scheme == "rediss":
                parts.append("ssl=true")
            if url.path.strip("/"):
                parts.append(f"db={url.path.strip('/')}")
            return ",".join(parts)
        host, colon, port = value.split(",")[0].rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"{without_passwords(value)!r} is not HOST:PORT[,db=N] or redis://HOST:PORT/DB")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _kafka_servers(cls, value: str | None) -> str | None:
        if value:  # a typo fails at start-up, naming the setting, not as a traceback of the first command
            net.kafka_servers(value)
        return value or None

    @field_validator("kafka_config", mode="before")
    @classmethod
    def _librdkafka_properties(cls, value: object) -> object:
        # said per property: pydantic's own error named one variable per member of the value's union
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(item, str | int | float | bool):
                    raise ValueError(f"property {key!r} is {item!r}: give a string, a number or true/false")
        return value

    @field_validator("stream_cpus", "serve_cpus")
    @classmethod
    def _cpu_list(cls, value: str) -> str:
        parse_cpus(value)  # a typo fails at start-up, naming the setting
        return value.strip()

    # Derived locations: one place decides where every piece of state lives.
    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    @property
    def lake_catalog(self) -> Path:
        return self.lake_dir / "catalog.sqlite"

    @property
    def lake_data(self) -> Path:
        return self.lake_dir / "data"

    @property
    def archive_dir(self) -> Path:
        return self.home / "archive"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def bootstrap(self) -> str:
        """The bootstrap.servers string clients use, embedded broker or real Kafka."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    def mlflow_tracking_uri(self) -> str:
        """Where runs and the model registry live: ``mlflow_uri``, else SQLite under ``home``.

        Training logs there and the scorer loads from there. MLFLOW_TRACKING_URI is deliberately not
        read: `mlflow.set_tracking_uri` writes it into the environment, so one store used in a process
        would leak into every later Settings (seen: a scorer finding another home's champion).
        """
        if self.mlflow_uri:
            return self.mlflow_uri
        # no folder made here: asking where the store is must not create it (use_mlflow_store does)
        return f"sqlite:///{(self.home / 'mlflow').resolve() / 'mlflow.db'}"

    def recordings(self) -> Path | None:
        """Where the demo reads recorded ticks from, or None when it must simulate."""
        if self.data_dir is not None:
            return self.data_dir
        shared = Path("..") / "shared" / "data" / "coinbase"
        return shared if shared.is_dir() else None


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A line for each ``TICKSTORE_*`` variable that names no setting (case aside, as settings are
    read), with the setting it is nearest to: pydantic ignores them, so a misspelt
    TICKSTORE_KAFKA_BOOTSTRAP_SERVERS left the embedded broker in use without a word."""
    environ = os.environ if environ is None else environ
    known = sorted(name.upper() for name in Settings.model_fields)
    lines = []
    for key in sorted(environ):
        prefix, name = key[:10].upper(), key[10:].upper()
        if prefix == "TICKSTORE_" and name not in known:
            # the names less their shared prefix, which made any two look alike
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.55)
            hint = f": did you mean TICKSTORE_{near[0]}?" if near else " (the README's Settings lists them)"
            lines.append(f"{key} is not a tickstore setting and is ignored{hint}")
    return lines
