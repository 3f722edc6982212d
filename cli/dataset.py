"""`tickstore dataset`: point-in-time-correct training sets through Feast on the lake."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import click
from click.shell_completion import CompletionItem
from rich.markup import escape
from rich.progress import BarColumn

from cli.context import PRODUCTS, SECONDS, OutPath, console, progress_bar, settings_of
from cli.ranges import AS_OF, WHEN, WHEN_SHOWN, range_needed, snapshot_of
from tickstore.errors import shown


def _parquet_path(path: Path) -> Path:
    # the build writes Parquet whatever the name: train.csv would hold Parquet
    from training.entities import PARQUET_SUFFIXES

    if path.suffix.lower() not in PARQUET_SUFFIXES:
        raise click.BadParameter(
            f"the training set is written as Parquet: name it {path.stem}.parquet, not {path.name}"
        )
    return path


@contextlib.contextmanager
def _progress() -> Iterator[tuple[Callable[[int, int], None], Callable[[str], None]]]:
    """A progress bar over a build's entity rows: (told the rows done of all, told what it does now)."""
    with progress_bar(
        BarColumn(),
        "{task.completed:,}/{task.total:,} rows",
    ) as bar:
        task = bar.add_task("point-in-time join", total=1)
        yield (
            lambda done, total: bar.update(task, completed=done, total=total),
            lambda text: bar.update(task, description=text),
        )


@click.group()
def dataset() -> None:
    """Point-in-time-correct training sets through Feast on the lake."""


def _complete_features(incomplete: str) -> list[CompletionItem]:
    """Tab in bash or zsh: the views of sql/ for the list's last item, then a view's features after
    its ':' (read from the SQL files, as `.schema` reads them: no registry opened)."""
    from tickstore import feature_sql

    done, comma, last = incomplete.rpartition(",")
    view, colon, partial = last.partition(":")
    views = feature_sql.views()
    if not colon:
        names = [name for name in views if name.startswith(view)]
    elif view in views:
        columns = feature_sql.column_comments(views[view].read_text())
        names = [f"{view}:{column}" for column in columns if column.startswith(partial)]
    else:
        names = []
    return [CompletionItem(done + comma + name) for name in names]


@dataset.command("build")
@click.option(
    "--out",
    "-o",
    type=OutPath(path_type=Path, dir_okay=False),
    required=True,
    callback=lambda ctx, param, value: _parquet_path(value),
    help="Parquet file to write (.parquet).",
)
@click.option("--service", metavar="NAME", help="Feast feature service.  [default: volatility_model]")
@click.option(
    "--features",
    metavar="VIEW[:FEATURE],...",
    shell_complete=lambda ctx, param, incomplete: _complete_features(incomplete),
    help="Or: features one by one, comma-separated: view:feature, or a view for all of its features "
    "(ticks_60s:ret_std_60s,ticks_10s).",
)
@click.option(
    "--entities",
    "entities_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path, allow_dash=True),
    help="CSV (or TSV) or Parquet with product_id, event_timestamp ('-': read from stdin).",
)
@click.option("--every", type=SECONDS, help="Or: one entity row every SECONDS (2.5, 10s, 1m) per product...")
@click.option(
    "--start",
    type=WHEN,
    metavar=WHEN_SHOWN,
    help="...from this UTC time...",
)
@click.option(
    "--end",
    type=WHEN,
    metavar=WHEN_SHOWN,
    help="...to this UTC time (exclusive).",
)
@click.option(
    "--products", type=PRODUCTS, help="Comma-separated products for --every (default: all with ticks)."
)
@click.option(
    "--as-of",
    "as_of",
    type=AS_OF,
    help="Read the lake at this snapshot, or as it was at this UTC time (rebuild an old dataset).",
)
@click.option(
    "--full-feature-names",
    is_flag=True,
    help="Name columns <view>__<feature> (as Feast does): for services whose views share feature names.",
)
@click.pass_context
def dataset_build(
    ctx: click.Context,
    out: Path,
    service: str | None,
    features: str | None,
    entities_file: Path | None,
    every: float | None,
    start: datetime | None,
    end: datetime | None,
    products: tuple[str, ...] | None,
    as_of: int | datetime | None,
    full_feature_names: bool,
) -> None:
    """Build a training set: features as of each entity row, never from after it.

    \b
      tickstore dataset build --every 1 --start 2025-12-06T06:15:00 \\
          --end 2025-12-06T08:30:00 --out train.parquet
      tickstore dataset build --entities rows.csv --out train.parquet --as-of 42
      tickstore dataset build --entities rows.csv --out spread.parquet \\
          --features ticks_60s:spread_bps_mean_60s,ticks_10s
    """

    from training import dataset as ds
    from training.entities import file_entities

    if service is not None and features is not None:
        raise click.UsageError("give either --service NAME or --features LIST, not both")
    asked = [f.strip() for f in (features or "").split(",") if f.strip()]
    if features is not None and not asked:
        raise click.UsageError("--features names no feature: e.g. --features ticks_60s:ret_std_60s,ticks_10s")
    if (entities_file is None) == (every is None):
        raise click.UsageError("give either --entities FILE or --every N with --start and --end")
    try:
        if entities_file is not None:
            if str(entities_file) == "-":  # piped in, e.g. from `tickstore sql --format csv`
                if sys.stdin.isatty():  # else it waits, silently, for rows typed in
                    raise click.UsageError(
                        "--entities - reads the rows from a pipe: `tickstore sql --format csv "
                        "'SELECT product_id, event_time AS event_timestamp FROM ticks ...' | "
                        "tickstore dataset build --entities - ...`, or give a file"
                    )
                entities: object = file_entities(Path("stdin"), sys.stdin.buffer.read())
            else:
                entities = file_entities(entities_file)
        else:
            if start is None or end is None:
                raise range_needed(
                    ctx, "--every", f"tickstore dataset build --every {every:g} --out {shlex.quote(str(out))}"
                )
            entities = ds.Grid(
                start,
                end,
                timedelta(seconds=every or 0),
                products or (),
            )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    snapshot = snapshot_of(ctx, as_of)
    with _progress() as (advance, stage):
        try:
            manifest = ds.build(
                settings_of(ctx),
                entities,
                out,
                feature_service=service or "volatility_model",
                features=asked,
                as_of=snapshot,
                progress=advance,
                stage=stage,
                full_feature_names=full_feature_names,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    console.print(
        f"wrote {manifest.rows:,} row{'s' * (manifest.rows != 1)} x {len(manifest.features)} "
        f"feature{'s' * (len(manifest.features) != 1)} to {out} "
        f"in {manifest.seconds:.1f} s (lake snapshot {manifest.snapshot}; rebuild with --as-of "
        f"{manifest.snapshot})"
    )
    names = set(manifest.feature_columns())  # not the entity file's own columns
    worst = sorted(
        ((k, v) for k, v in manifest.null_fraction.items() if k in names and v > 0), key=lambda kv: -kv[1]
    )[:3]
    console.print(
        "most NULL: " + ", ".join(f"{k} {v:.1%}" for k, v in worst) if worst else "no NULL feature values"
    )
    if manifest.products_without_ticks:
        known = ds.known_products(settings_of(ctx), manifest.snapshot)
        console.print(
            f"[yellow]warning:[/] no ticks at snapshot {manifest.snapshot} for "
            f"{escape(', '.join(map(shown, manifest.products_without_ticks)))}: every feature of their rows is "
            f"NULL (products with ticks: {escape(', '.join(known)) or 'none'}; names are exact: case and spaces "
            "count)",
            markup=True,
        )
    if manifest.products_without_values:
        spans = ds.tick_spans(settings_of(ctx), manifest.snapshot, manifest.products_without_values)
        utc = "%Y-%m-%d %H:%M:%S"
        for product in manifest.products_without_values:
            first, last = spans[product]
            console.print(
                f"[yellow]warning:[/] none of the rows of {escape(shown(product))} has a feature value: no tick "
                f"of it lies within a view's TTL before any of them (its ticks run from {first:{utc}} to "
                f"{last:{utc}} UTC)",
                markup=True,
            )


@dataset.command("verify")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def dataset_verify(ctx: click.Context, path: Path) -> None:
    """Rebuild a training set as its manifest says and check it comes out byte for byte the same.

    \b
      tickstore dataset verify train.parquet

    The set's own rows are the entity rows, read at the lake snapshot and with the features its
    manifest (<name>.manifest.json, written beside it) records, while ingest goes on. Exit code 0: the
    same bytes. 1: a feature view's SQL changed since (the diff is shown), the file was changed since
    it was written (the manifest records its SHA-256), or the values differ (which columns, how many
    rows, the first of them).
    """
    from training import verify as v

    try:
        manifest = v.read_manifest(path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    named = manifest.feature_service
    what = f"feature service {named}" if named else "features named one by one"
    console.print(
        f"{path}: {manifest.rows:,} rows x {len(manifest.features)} features ({what}), "
        f"built {manifest.built_at[:19].replace('T', ' ')} UTC at lake snapshot {manifest.snapshot}"
    )
    with _progress() as (advance, stage):
        try:
            report = v.verify(settings_of(ctx), path, progress=advance, stage=stage, manifest=manifest)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    for name, diff in report.changed.items():
        console.print(
            f"[yellow]{escape(name)}'s SQL changed since the set was built[/]; a rebuild computes it anew:",
            markup=True,
        )
        console.print(
            diff or "   (its definition changed; no SQL text to compare)", markup=False, highlight=False
        )
    if report.removed:
        raise click.ClickException(
            f"feature_repo/ no longer defines {', '.join(report.removed)}, which the set read: restore "
            "its definition (git log feature_repo/) to rebuild it"
        )
    if not manifest.sha256:
        console.print(
            "[yellow]note:[/] the manifest records no SHA-256 of the file (a set built before tickstore "
            "recorded one): a product or time edited in it since is rebuilt as it now reads, unseen",
            markup=True,
        )
    if report.identical:
        console.print(
            f"[green]reproduced[/]: rebuilt at lake snapshot {manifest.snapshot} in {report.seconds:.1f} s, "
            "byte for byte the same",
            markup=True,
        )
        return
    if report.edited:
        console.print(
            f"[red]not reproduced[/]: {escape(str(path))} is not the file the build wrote (its SHA-256 is not "
            "the manifest's): changed since it was built.",
            markup=True,
        )
        if report.as_built:
            console.print(
                "Rebuilt from its rows, the set comes out as the build wrote it: the change is this "
                "file's. Where it differs from the rebuild:"
            )
    else:
        console.print(
            f"[red]not reproduced[/]: rebuilt at lake snapshot {manifest.snapshot}, it differs:", markup=True
        )
    for line in report.differences:
        console.print(f"  {line}", markup=False, highlight=False)
    if report.changed:
        console.print(
            f'restore the SQL it was built with to reproduce it: the manifest holds it ({path.with_suffix(".manifest.json")}, key "sql")'
        )
    ctx.exit(1)
