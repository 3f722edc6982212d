"""What every command shares: the consoles and the settings the root group parsed."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from tickstore.settings import Settings

# In a pipe or a CI log rich would wrap at 80 columns, splitting the commands it prints for pasting
# (`mlflow ui --backend-store-uri ...`): there, lines are left whole and tables get 200 columns.
_TTY = sys.stderr.isatty()
console = Console(stderr=True, soft_wrap=not _TTY, width=None if _TTY else 200)
# A report that is the command's answer (`status`, `broker status`) goes to stdout, so that
# `tickstore status | grep` and `> status.txt` get it; progress and logs stay on stderr.
_OUT_TTY = sys.stdout.isatty()
report = Console(soft_wrap=not _OUT_TTY, width=None if _OUT_TTY else 200)


class ProductList(click.ParamType):
    """Comma-separated product ids, e.g. ``BTC-USD,ETH-USD``: spaces dropped, upper-cased (Coinbase's
    ids are), at least one."""

    name = "PRODUCT[,PRODUCT...]"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        products = tuple(dict.fromkeys(p.strip().upper() for p in str(value).split(",") if p.strip()))
        if not products:
            self.fail("name at least one product, e.g. BTC-USD or BTC-USD,ETH-USD", param, ctx)
        return products


PRODUCTS = ProductList()
POSITIVE = click.FloatRange(min=0, min_open=True)  # seconds, speeds: 0 would mean nothing or divide by 0


def settings_of(ctx: click.Context) -> Settings:
    """The settings `tickstore` built from --home and TICKSTORE_* (set on the root group's context)."""
    return ctx.obj["settings"]  # type: ignore[no-any-return]
