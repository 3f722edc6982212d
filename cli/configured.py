"""`tickstore settings`: every setting's value in use and where it came from, secrets masked."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import click
from rich import box
from rich.table import Table

from cli.context import format_option, report, settings_of
from tickstore.settings import Settings
from tickstore.text import MASK, without_passwords

# librdkafka properties holding a secret (`sasl.password`, `ssl.key.password`, an inline `ssl.key.pem`,
# `sasl.oauthbearer.client.secret`, ...)
SECRET_PROPERTY = re.compile(r"password|secret|token|credential|\.pem$", re.IGNORECASE)


def shown(settings: Settings, name: str) -> str:
    """The value of setting ``name`` as a line: secrets masked, and what an unset one stands for."""
    value = getattr(settings, name)
    if value is None:
        stands_for = {
            "kafka_bootstrap": f"the embedded broker at {settings.bootstrap}",
            "mlflow_uri": settings.mlflow_tracking_uri(),
            "data_dir": str(settings.recordings() or "none: the demo simulates ticks"),
            "serve_workers": f"{settings.scorer_workers()} workers",
        }.get(name)
        return f"unset ({stands_for})" if stands_for else "unset"
    if isinstance(value, dict):
        return json.dumps({k: MASK if SECRET_PROPERTY.search(k) else v for k, v in value.items()})
    if name == "home":
        return f"{value} ({value.resolve()})" if not value.is_absolute() else str(value)
    if value == "":
        return "empty (any CPU)" if name.endswith("_cpus") else "empty"
    return without_passwords(str(value))


def source(name: str, home_option: bool, environ: Mapping[str, str]) -> str:
    """Where setting ``name`` came from: --home, a TICKSTORE_* variable (read case aside), or the
    default."""
    if name == "home" and home_option:
        return "--home"
    variable = f"TICKSTORE_{name.upper()}"
    return "environment" if any(key.upper() == variable for key in environ) else "default"


def rows(
    settings: Settings, home_option: bool, environ: Mapping[str, str] | None = None
) -> list[tuple[Any, ...]]:
    """A row per setting, in the order Settings declares them (the README's table): variable, value
    in use, where it came from."""
    environ = os.environ if environ is None else environ
    return [
        (f"TICKSTORE_{name.upper()}", shown(settings, name), source(name, home_option, environ))
        for name in Settings.model_fields
    ]


@click.command("settings")
@format_option("table: for reading; csv: with a header; json: one object per line.")
@click.pass_context
def settings_command(ctx: click.Context, fmt: str) -> None:
    """Every setting's value in use, and where it came from (--home, the environment, the default).

    Passwords (in a URL, Feast's Redis form, TICKSTORE_KAFKA_CONFIG's secret properties) are shown
    as ***. Each is a TICKSTORE_* environment variable; the README's Settings section says what each
    does.
    """
    home_option = ctx.find_root().params.get("home") is not None
    found = rows(settings_of(ctx), home_option)
    if fmt != "table":
        from cli.results import print_rows

        print_rows(["variable", "value", "from"], found, fmt)
        return
    # a line per setting, a long value folded within its column: the row-per-block layout `sql` falls
    # back to in a narrow terminal made 40 settings 160 lines at 80 columns
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("variable", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("from", no_wrap=True)
    for row in found:
        table.add_row(*row)
    report.print(table)
