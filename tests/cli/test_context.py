"""The CLI's shared parameter types (cli/context.py): durations."""

from __future__ import annotations

import click
import pytest


@pytest.mark.parametrize(
    ("typed", "seconds"),
    [("90", 90.0), ("2.5", 2.5), ("500ms", 0.5), ("10s", 10.0), ("10 s", 10.0), ("5m", 300.0)]
    + [("5min", 300.0), ("1.5h", 5400.0), ("1d", 86400.0), ("2H", 7200.0), ("1e3", 1000.0), (7, 7.0)],
)
def test_durations_are_read_in_seconds_with_or_without_a_unit(typed: object, seconds: float) -> None:
    from cli.context import SECONDS, Seconds

    assert SECONDS.convert(typed, None, None) == seconds
    assert Seconds(zero=True).convert("0s", None, None) == 0.0


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("1e308", "give at most 100 years"),
        ("36501d", "give at most 100 years"),
        ("1e-9", "at least 1 microsecond"),
    ],
)
def test_a_duration_past_what_a_time_step_can_be_says_so(typed: str, says: str) -> None:
    """1e308 s was an OverflowError traceback making a timedelta; 1e-9 s a step of "0.0 s"."""
    from cli.context import SECONDS

    with pytest.raises(click.BadParameter, match=says):
        SECONDS.convert(typed, None, None)
    assert SECONDS.convert("36500d", None, None) == 36500 * 86400.0
    assert SECONDS.convert("1e-6", None, None) == 1e-6


def test_product_lists_refuse_ids_the_sink_would_reject() -> None:
    from cli.context import PRODUCTS

    assert PRODUCTS.convert(" btc-usd,ES.Z25 ,,", None, None) == ("BTC-USD", "ES.Z25")
    for typed in ("BTC USD", "-BTC", "X" * 65, "BTC-USD,ETH USD"):
        with pytest.raises(click.BadParameter, match="is not a product id"):
            PRODUCTS.convert(typed, None, None)


@pytest.mark.parametrize("stream", ["console", "report"])
def test_the_consoles_print_text_that_reads_as_markup_as_it_is(stream: str) -> None:
    """A path, product or error text holding "[/x]" stopped the command (rich's MarkupError), and
    "[x]" vanished: the shared consoles read no markup unless a styled line asks for it."""
    import subprocess
    import sys

    line = "wrote /tmp/[/x]/[data].parquet; no ticks for [red]BTC"
    # and control characters written out (an error text can quote a message from the broker), a tab kept
    sent = "bad \x1b[2J\r\tvalue"
    code = (
        f"from cli.context import {stream}; {stream}.print({line!r}); {stream}.print('[green]ok[/]', markup=True); "
        f"{stream}.print({sent!r})"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (run.stderr if stream == "console" else run.stdout).splitlines() == [
        line,
        "ok",
        "bad \\x1b[2J\\x0d value",  # the tab out to its stop
    ]


def test_a_progress_bar_shows_its_description_and_columns_as_they_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a terminal: the description first, in rich's style for it, then the columns; brackets in
    either shown, not read as markup (the console reads none)."""
    import io

    from rich.progress import BarColumn

    from cli import context

    out = io.StringIO()
    terminal = context._Console(file=out, force_terminal=True, markup=False, width=120, color_system=None)
    monkeypatch.setattr(context, "console", terminal)
    with context.progress_bar(BarColumn(), "{task.completed:,} of [all]") as bar:
        task = bar.add_task("replaying [2] files", total=10)
        bar.advance(task, 4)
        bar.refresh()
    drawn = out.getvalue()
    assert "replaying [2] files" in drawn and "4 of [all]" in drawn, drawn
    assert "[progress" not in drawn, drawn
