"""What every command shares: the consoles and the settings the root group parsed."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem
from rich.console import Console
from rich.progress import Progress, ProgressColumn, TextColumn

from tickstore.products import RULE, is_product_id
from tickstore.settings import Settings
from tickstore.text import visible

F = TypeVar("F", bound=Callable[..., Any])


# In a pipe or a CI log rich would wrap at 80 columns, splitting the commands it prints for pasting
# (`mlflow ui --backend-store-uri ...`): there, lines are left whole and tables get 200 columns.
# Markup off: what they print holds paths, product ids, SQL and error texts, and a "[/x]" in one
# stopped the command (rich's MarkupError) where "[x]" vanished; a styled line asks for markup=True
# and escapes what it interpolates (rich.markup.escape).
class _Console(Console):
    """A console whose printed text shows control characters rather than sending them (a path, an
    error text or a message from the broker can hold an ESC sequence, which acts on the terminal)."""

    def print(self, *objects: Any, **options: Any) -> None:
        super().print(*(visible(o, tabs=True) if isinstance(o, str) else o for o in objects), **options)


_TTY = sys.stderr.isatty()
console = _Console(stderr=True, soft_wrap=not _TTY, width=None if _TTY else 200, markup=False)
# A report that is the command's answer (`status`, `broker status`) goes to stdout, so that
# `tickstore status | grep` and `> status.txt` get it; progress and logs stay on stderr.
_OUT_TTY = sys.stdout.isatty()
report = _Console(soft_wrap=not _OUT_TTY, width=None if _OUT_TTY else 200, markup=False)


# A non-breaking hyphen stands in for a word's hyphens while click wraps help: textwrap breaks lines
# at an ASCII "-" only, and broke `BTC-` / `USD` and `models:/tickstore-` / `volatility@champion`,
# values a reader copies whole. Put back before the help is printed.
_HELD = "\u2011"


def _held(text: str) -> str:
    """``text`` with the hyphens inside its words held (``_HELD``)."""
    return re.sub(r"(?<=\w)-(?=\w)", _HELD, text)


class HelpFormatter(click.HelpFormatter):
    """Click's help layout, never breaking a line inside a hyphenated word."""

    def write_text(self, text: str) -> None:
        super().write_text(_held(text))

    def write_dl(self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        super().write_dl([(first, _held(second)) for first, second in rows], col_max, col_spacing)

    def getvalue(self) -> str:
        return super().getvalue().replace(_HELD, "-")


class Context(click.Context):
    """Every tickstore command's context: help laid out by ``HelpFormatter``."""

    formatter_class = HelpFormatter


def format_option(help: str) -> Callable[[F], F]:
    """`--format table|csv|json` into ``fmt``, as every command printing rows takes it
    (`cli.results.print_rows`)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "csv", "json"]),
        default="table",
        show_default=True,
        help=help,
    )


def progress_bar(*columns: str | ProgressColumn) -> Progress:
    """A progress bar on the console: its task's description, then ``columns`` (a str is a format of
    ``task``, shown as it reads); gone once done, and none outside a terminal, where rich's left a
    blank line in the log and nothing else."""
    # Text columns of their own, not read as markup: the console reads none (see above), so rich's
    # "[progress.description]" style was shown as text, and a description may hold a file name
    shown: list[ProgressColumn] = [
        TextColumn("{task.description}", style="progress.description", markup=False)
    ]
    shown += [TextColumn(c, markup=False) if isinstance(c, str) else c for c in columns]
    return Progress(*shown, console=console, transient=True, disable=not console.is_terminal)


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
        # the sink rejects every tick of such a product: said here, before anything is sent or built
        bad = [p for p in products if not is_product_id(p)]
        if bad:
            self.fail(f"{bad[0][:80]!r} is not a product id ({RULE}), e.g. BTC-USD", param, ctx)
        return products

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        """Tab in bash or zsh: the lake's products for the list's last item (none without a lake)."""
        done, comma, last = incomplete.rpartition(",")
        known = lake_rows(ctx, "SELECT DISTINCT product_id FROM ticks ORDER BY 1")
        return [CompletionItem(done + comma + p) for (p,) in known if p.startswith(last.upper())]


def lake_rows(ctx: click.Context, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` over the lake of the home the command line names, for Tab completion: none
    where there is no lake or a setting is wrong (nothing to offer; an error would land in the
    command line), and no lake made for the asking."""
    import duckdb

    from tickstore import lake
    from tickstore.errors import TickstoreError

    home = ctx.find_root().params.get("home")
    try:
        settings = Settings(**({"home": home} if home else {}))
        con = lake.connect(settings, create=False, read_only=True)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()
    except (TickstoreError, ValueError, duckdb.Error):
        return []


class Seconds(click.ParamType):
    """A duration in seconds, as a number (``90``, ``2.5``) or with a unit (``500ms``, ``10s``, ``5m``,
    ``1h``, ``1d``): people write ``--every 10s``, and "'10s' is not a valid float" helped nobody."""

    name = "SECONDS"
    SMALLEST, LONGEST = 1e-6, 100 * 365 * 86400.0
    UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}

    def __init__(self, *, zero: bool = False) -> None:
        self.zero = zero  # whether 0 means something (no pause) rather than nothing or a division by 0

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            text = str(value).strip().lower()
            number = text.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
            unit = text[len(number) :].strip() or "s"
            try:
                seconds = float(number) * self.UNITS[unit]
            except (ValueError, KeyError):
                self.fail(
                    f"{value!r} is not a duration: seconds (10, 2.5) or a number with a unit "
                    "(500ms, 10s, 5m, 1h, 1d)",
                    param,
                    ctx,
                )
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a duration", param, ctx)
        if seconds < 0 or (seconds == 0 and not self.zero):
            self.fail(f"{value!r}: give a duration {'of 0 or more' if self.zero else 'above 0'}", param, ctx)
        # the ends of what a time step can be: the lake keeps times to the microsecond (1e-9 was a
        # step of "0.0 s"), and 1e308 s was an OverflowError traceback where it became a timedelta
        if 0 < seconds < self.SMALLEST:
            self.fail(
                f"{value!r}: give at least 1 microsecond (1e-6; times are kept to the microsecond)",
                param,
                ctx,
            )
        if seconds > self.LONGEST:
            self.fail(f"{value!r}: give at most 100 years ({self.LONGEST:,.0f} s)", param, ctx)
        return seconds


class Number(click.FloatRange):
    """A FloatRange refusing NaN: every comparison with NaN is false, so a range let 'nan' through
    (`--max-share nan` passed any drift)."""

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)  # type: ignore[arg-type]  # click's stub: float only
        if math.isnan(number):
            self.fail(f"{value!r} is not a number", param, ctx)
        return float(number)


class OutPath(click.Path):
    """A path to write to, refusing an empty one: to click '' is the current folder, so an unset shell
    variable (`-o "$DIR"`) put a drift report, or a whole home, wherever the command ran."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("the path is empty: name a file or folder", param, ctx)
        return super().convert(value, param, ctx)


PRODUCTS = ProductList()
POSITIVE = Number(min=0, min_open=True)  # speeds: 0 would mean nothing or divide by 0
SECONDS = Seconds()


def settings_of(ctx: click.Context) -> Settings:
    """The settings `tickstore` built from --home and TICKSTORE_* (set on the root group's context)."""
    return ctx.obj["settings"]  # type: ignore[no-any-return]
