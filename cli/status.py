"""`tickstore status`: every part at a glance (broker, lake, online store, model, scorer), and what to do next."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from cli.broker import broker_report
from cli.context import report, settings_of
from tickstore import catalog, net
from tickstore.errors import TickstoreError
from tickstore.settings import Settings
from tickstore.text import count_of, size_of, without_passwords

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

    from serving.features import OnlineFeatures

OK, MISSING, CHANGED = "[green]ok[/]", "[red]missing[/]", "[red]changed[/]"
UNREADABLE = "[red]unreadable[/]"  # there, but damaged or its server down


def _age(seconds: float) -> str:
    """A duration the way people say it: 42 s, 7 min, 3 h, 2 d."""
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds / 86400:.0f} d"


def _ago(seconds: float) -> str:
    """How long ago, or how far ahead of this machine's clock a time is (a clock set wrong here or
    where the ticks came from: a negative age read "-20917 s ago")."""
    return f"{_age(seconds)} ago" if seconds >= 0 else f"{_age(-seconds)} ahead of this machine's clock"


def _newest(when: datetime | str) -> str:
    """A product's newest tick time and its age; DuckDB gives a time Python can't hold (a year past
    9999, written with `tickstore sql --write`) as text, said as it is."""
    if not isinstance(when, datetime):
        return f"{when} (a time Python can't hold: delete that tick with `tickstore sql --write`)"
    return f"{when:%Y-%m-%d %H:%M:%S} UTC ({_ago((datetime.now(UTC) - when).total_seconds())})"


def lake_report(settings: Settings) -> tuple[bool, list[str], list[str]]:
    """(lake readable, lines, products with ticks)."""
    import duckdb

    from tickstore import catalog, lake, tables

    try:
        con = lake.connect(settings, create=False, read_only=True)
    except (lake.LakeError, duckdb.Error) as exc:
        file = settings.lake_catalog
        label = UNREADABLE if file.exists() and file.stat().st_size else MISSING
        return False, [f"lake: {label}: {escape(str(exc))}"], []
    try:
        snapshot = lake.current_snapshot(con)
        # a table dropped or altered by hand (DuckDB's CLI, an older `tickstore sql --write`): said with
        # how to put it back, where a query of it was a CatalogException's traceback
        if (problem := tables.table_problem(con)) is not None:
            table, what = problem
            said = f"{what}: {tables.put_back(con, table)}"
            label = MISSING if what.startswith(tables.GONE) else CHANGED
            return False, [f"lake {escape(str(settings.lake_catalog.parent))}: {label}: {escape(said)}"], []
        try:
            per_product = con.execute(
                "SELECT product_id, count(*), max(event_time) FROM ticks GROUP BY 1 ORDER BY 1"
            ).fetchall()
            rejected = con.execute("SELECT count(*) FROM ticks_rejected").fetchone()[0]  # type: ignore[index]
            live = con.execute(LIVE_BYTES, {"lake": lake.LAKE}).fetchone()[0]  # type: ignore[index]
            waiting = _waiting_rows(con)
        except duckdb.IOException as exc:  # a data file removed by hand: the other parts still said
            said = catalog.missing_data_file(settings, str(exc)) or str(exc)
            return (
                False,
                [f"lake {escape(str(settings.lake_catalog.parent))}: {UNREADABLE}: {escape(said)}"],
                [],
            )
    finally:
        con.close()
    total = sum(n for _, n, _ in per_product)
    lines = [
        f"lake {escape(str(settings.lake_catalog.parent))}: {OK}, {count_of(total, 'tick')} of {count_of(len(per_product), 'product')} at "
        f"snapshot {snapshot}, {rejected:,} rejected (table ticks_rejected, for `tickstore sql`"
        + ("; by reason: `tickstore ingest rejected --dry-run`)" if rejected else ")")
    ]
    lines += [f"  {escape(p)}: {n:,} ticks, newest {escape(_newest(newest))}" for p, n, newest in per_product]
    if not per_product:
        lines.append("  no ticks yet: `tickstore ingest replay ...` (or simulate) and `tickstore sink`")
    else:
        lines.append(_disk_line(settings, int(live), waiting))
    return True, lines, [p for p, _, _ in per_product]


# Bytes of the data files the newest snapshot reads, of both tick tables.
LIVE_BYTES = """
SELECT coalesce(sum(data_file_size_bytes + coalesce(delete_file_size_bytes, 0)), 0)
FROM (SELECT * FROM ducklake_list_files($lake, 'ticks')
      UNION ALL SELECT * FROM ducklake_list_files($lake, 'ticks_rejected'))
"""


# Each tick table's inlined rows are in tables of the lake's catalog, one per schema version, named by
# DuckLake; DuckDB attaches that catalog as "__ducklake_metadata_<lake>"
INLINED_TABLES = """
SELECT list($meta || '.' || i.table_name) FROM {meta}.ducklake_inlined_data_tables AS i
JOIN {meta}.ducklake_table AS t USING (table_id)
WHERE t.end_snapshot IS NULL AND t.table_name IN ('ticks', 'ticks_rejected')
"""


def _waiting_rows(con: DuckDBPyConnection) -> int:
    """Rows of the tick tables that wait in the catalog for the sink's next compaction to write them to
    a data file (small writes, inlined: TICKSTORE_SINK_INLINE_ROWS); 0 when the catalog can't say."""
    import duckdb

    from tickstore import lake

    meta = f"__ducklake_metadata_{lake.LAKE}"
    try:
        row = con.execute(INLINED_TABLES.format(meta=meta), {"meta": meta}).fetchone()
        if not row or not row[0]:
            return 0
        # rows a later snapshot deleted have an end
        row = con.execute(
            "SELECT count(*) FROM query_table($names::VARCHAR[], true) WHERE end_snapshot IS NULL",
            {"names": row[0]},
        ).fetchone()
    except duckdb.Error:  # another DuckLake's catalog layout: the line says what it can
        return 0
    return int(row[0]) if row else 0


def _disk_line(settings: Settings, live: int, waiting: int = 0) -> str:
    """How much of the disk the lake's data files take, why more than its newest snapshot reads, and
    how many rows wait in the catalog for a data file."""
    on_disk = 0
    for folder, _, names in os.walk(settings.lake_data):
        for name in names:
            with contextlib.suppress(FileNotFoundError):  # the sink's cleanup removing it meanwhile
                on_disk += os.stat(os.path.join(folder, name)).st_size
    line = f"  data files: {size_of(on_disk)} on disk"
    if on_disk > live:  # merged-away files serve the older snapshots until those expire
        line += (
            f", {size_of(live)} read by the newest snapshot; the rest keep earlier snapshots for "
            f"`--as-of` ({settings.snapshot_retention_days:g} days, TICKSTORE_SNAPSHOT_RETENTION_DAYS; "
            "the sink's compaction removes them after)"
        )
    if waiting:  # small batches: read as any other row, kept in the catalog, not yet in a file
        line += (
            f"; {count_of(waiting, 'row')} in the catalog, not yet in a file: the sink's next compaction "
            "writes them out (small batches wait there: TICKSTORE_SINK_INLINE_ROWS)"
        )
    return line


def online_report(settings: Settings, products: list[str]) -> tuple[OnlineFeatures | None, list[str]]:
    """The online store's reader (None when it does not answer), and how old each product's features
    are there."""
    from serving.features import FeaturesUnavailable, OnlineFeatures
    from tickstore_feast.config import online_store_file, registry_path
    from tickstore_feast.repo import feature_store

    where = "Redis " + without_passwords(settings.redis_url) if settings.online_store == "redis" else "SQLite"
    try:
        try:
            # a home that is a file fails here, as opening Feast's store did: the CLI names it
            Path(registry_path(settings)).stat()
        except FileNotFoundError:
            # Feast's store opened on it would create the registry and the online store's files
            return None, [
                f"online store ({escape(where)}): {MISSING}: no feature registry yet; run `tickstore stream` "
                "(it registers the views) or `tickstore feast apply`"
            ]
        file = online_store_file(settings)
        if file is not None and not file.exists():
            # asking makes nothing: Feast's SQLite store, opened, would make the file and its tables
            online = OnlineFeatures(settings, feature_store(settings, apply=False, online=False))
            return online, [
                f"online store ({escape(where)}): {OK}, no features online yet: `tickstore stream` writes "
                f"them to {escape(str(file))} (a stream writing to Redis is read with "
                "TICKSTORE_ONLINE_STORE=redis)"
            ]
        online = OnlineFeatures(settings)
        online.ping()
        rows = online.read(products) if products else []
    except (FeaturesUnavailable, TickstoreError) as exc:  # TickstoreError: no feature_repo/ to read
        return None, [f"online store ({escape(where)}): {MISSING}: {escape(str(exc))}"]
    lines = [f"online store ({escape(where)}): {OK}"]
    for r in rows:
        if r.age_s is None:
            lines.append(f"  {escape(r.product_id)}: no features online: `tickstore stream` writes them")
        else:
            stale = f", [yellow]expired: {escape(', '.join(r.expired_views))}[/]" if r.expired_views else ""
            lines.append(f"  {escape(r.product_id)}: features as of {_ago(r.age_s)}{stale}")
    return online, lines


def _kind(kind: str | None, horizon_s: float | str | None) -> str:
    """A model's kind and its label's horizon, as "xgboost, 60 s horizon" (what its p is of)."""
    return f"{kind or '?'}" + ("" if horizon_s is None else f", {float(horizon_s):g} s horizon")


def model_report(settings: Settings, online: OnlineFeatures | None = None) -> tuple[bool, list[str]]:
    """Whether the model the scorer would load exists, which it is, and (given the online store's
    reader) whether the scorer can feed it: every feature it reads served, computed by the same SQL."""
    from serving.features import redefined_message
    from serving.model import trained_fingerprints
    from serving.model_uri import ALIAS_URI, hint
    from serving.model_uri import missing as names_nothing
    from tickstore.mlflow_store import reason, store_exists, use_mlflow_store

    uri = escape(settings.serve_model_uri)  # said in markup lines
    if not store_exists(settings):
        return False, [f"model {uri}: {MISSING}: no MLflow store yet (`tickstore train` creates it)"]
    try:
        use_mlflow_store(settings)
    except TickstoreError as exc:  # a tracking server that is down, a damaged store
        return False, [f"model {uri}: {UNREADABLE}: {escape(str(exc))}"]
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        alias = ALIAS_URI.match(settings.serve_model_uri)
        if alias is None:  # runs:/..., models:/name/3: the scorer loads it as given, if it is there
            problem = names_nothing(settings.serve_model_uri)
            if problem is not None:
                return False, [f"model {uri}: {MISSING}: {escape(problem)}"]
            return True, [f"model {uri}: set by TICKSTORE_SERVE_MODEL_URI"]
        version = client.get_model_version_by_alias(alias["name"], alias["alias"])
        run = client.get_run(version.run_id) if version.run_id else None
    except Exception as exc:  # MLflow raises its own kinds for "not found" and for a server that is down
        said = reason(exc).splitlines()[0]
        return False, [f"model {uri}: {MISSING}: {escape(said)}. {escape(hint())}"]
    params = run.data.params if run else {}
    kind = _kind(params.get("model"), params.get("horizon_s"))
    when = datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
    line = (
        f"model {uri}: {OK}, version {version.version} ({escape(kind)}), registered {when:%Y-%m-%d %H:%M} UTC "
        f"({_ago(time.time() - when.timestamp())})"
    )
    if online is None or run is None:
        return True, [line]
    # what /v1/score would refuse the model for: said here, not first by a 503 in production
    features = json.loads(run.data.tags.get("features", "[]"))
    trained_on = trained_fingerprints(run.data.params)
    problems = []
    missing = online.unserved(features)
    if missing:
        problems.append(
            f"  the model reads {escape(', '.join(missing))}, which the feature service does not serve: "
            "`tickstore feast apply` the feature repo it was trained with, or train on the current one"
        )
    changed = online.redefined(features, trained_on)
    if changed:
        problems.append("  " + escape(redefined_message(changed, run.info.run_id)))
    if problems:
        line = line.replace(OK, "[red]refused by the scorer[/]")
    return not problems, [line, *problems]


def _deleted_since(settings: Settings, model: dict[str, Any]) -> list[str]:
    """A line when the run a scorer serves by its runs:/ URI has been deleted in MLflow since it
    loaded (it goes on serving it, but would refuse it at its next start); none when MLflow can't say.
    A registered version's model is kept apart from its run, so a scorer serving one is left alone."""
    from serving.model_uri import RUN_URI, deleted_run, is_deleted
    from tickstore.mlflow_store import store_exists, use_mlflow_store

    run_id = model.get("run_id")
    if not isinstance(run_id, str) or not RUN_URI.match(str(model.get("uri"))) or not store_exists(settings):
        return []
    try:
        use_mlflow_store(settings)
        if not is_deleted(run_id):
            return []
    except Exception:  # another store than the scorer's, a server down: nothing to say here
        return []
    return [f"  [yellow]{escape(deleted_run(run_id))}, or start the scorer on another model[/]"]


def scorer_report(settings: Settings) -> tuple[bool, list[str]]:
    """Whether `tickstore serve` answers on its port, and which model it serves (`--model` may have
    given it another than the champion above): its `/readyz`. Not running is no failure, as for the
    sink and the stream; running and not ready is."""
    host = "127.0.0.1" if settings.serve_host in ("0.0.0.0", "::", "") else settings.serve_host
    url = f"http://{net.host_port(host, settings.serve_port)}"
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            code, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:  # 503: up, not ready
        code, raw = exc.code, exc.read()
    except (OSError, ValueError):  # refused, timed out: nothing serves there
        return True, [
            f"scorer {escape(url)}: not running (`tickstore serve`, or `tickstore serve --model runs:/...`)"
        ]
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or "ready" not in body:
        return False, [
            f"scorer {escape(url)}: {MISSING}: something else answers there (HTTP {code}), not `tickstore serve`: "
            "set TICKSTORE_SERVE_PORT to the scorer's port"
        ]
    model = body.get("model") or {}
    # what the scorer says is printed as it says it, not read as rich markup ("[...]")
    serving = (
        escape(f"{model.get('uri')} ({_kind(model.get('kind'), model.get('horizon_s'))})")
        if model
        else "no model"
    )
    if body["ready"]:
        return True, [f"scorer {escape(url)}: {OK}, serving {serving}", *_deleted_since(settings, model)]
    problems = escape("; ".join(str(p) for p in body.get("problems", [])))
    return False, [f"scorer {escape(url)}: [red]not ready[/], serving {serving}: {problems}"]


@click.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Every part at a glance: broker, lake, online store, the model, the scorer, and how fresh.

    Exit code 0 when every part answers, 1 when one is missing or down (its line says what to do).
    """
    s = settings_of(ctx)

    def show(lines: list[str]) -> None:
        # each part as soon as it is known: the broker and the lake answer in under a second, while
        # the online store and the model wait for Feast's and MLflow's imports (~4 s of the whole)
        for line in lines:
            report.print(line, markup=True)  # escaped where they interpolate

    if (beside := catalog.stray_home(s)) is not None:  # every line below is of a folder never used
        show(
            [
                f"[yellow]no data directory in this folder[/] ({escape(str(s.home.resolve()))} does not "
                f"exist); the source tree's, with its lake, is {escape(str(beside))}: "
                f"`tickstore --home {escape(shlex.quote(str(beside)))} status`"
            ]
        )
    fine, lines = broker_report(s)
    show(lines)
    lake_ok, lines, products = lake_report(s)
    show(lines)
    online, lines = online_report(s, products)
    show(lines)
    model_ok, lines = model_report(s, online)
    show(lines)
    scorer_ok, lines = scorer_report(s)
    show(lines)
    sys.exit(0 if fine and lake_ok and online is not None and model_ok and scorer_ok else 1)
