"""`tickstore sql --plot FILE` (cli/plot.py): a query's rows drawn, a panel a number column, a line a
product; rows it can't draw so refused with what would do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import matplotlib
import pandas as pd
import pytest
from click.testing import CliRunner

from cli import plot
from cli.main import main
from tests.cli.helpers import env_for
from tests.training.helpers import seeded
from tickstore.settings import Settings


@pytest.fixture
def text_in_svg() -> Iterator[None]:
    """SVGs with their text as text (matplotlib draws it as outlines), so a test can find a label."""
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        yield


def test_a_feature_views_rows_drawn_a_panel_a_feature_a_line_a_product(
    make_settings: Callable[..., Settings], tmp_path: Path, text_in_svg: None
) -> None:
    s = seeded(make_settings)  # BTC-USD and ETH-USD ticks
    query = "SELECT event_time, product_id, price_range_60s, tick_count_60s FROM ticks_60s"
    for out in (tmp_path / "features.png", tmp_path / "features.svg"):
        run = CliRunner().invoke(main, ["sql", query, "--plot", str(out)], env=env_for(s))
        assert run.exit_code == 0, run.output
        assert " ".join(run.output.split()) == (
            "plotted 600 rows (2 lines by product_id) of price_range_60s, tick_count_60s against "
            f"event_time: {out}"
        )
    assert (tmp_path / "features.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "features.svg").read_text()
    for label in ("BTC-USD", "ETH-USD", "price_range_60s", "tick_count_60s", "event_time (UTC)"):
        assert f">{label}<" in svg, label
    # nothing printed to stdout: the rows went to the plot
    assert "│" not in run.stdout
    # of a script, the last statement is drawn and the ones before print their rows
    script = f"SELECT count(*) AS n FROM ticks;\n{query};\n"
    run = CliRunner().invoke(main, ["sql", script, "--plot", str(out), "--format", "csv"], env=env_for(s))
    assert run.exit_code == 0 and run.stdout.split() == ["n", "600"], run.output
    assert "plotted 600 rows (2 lines by product_id) of price_range_60s" in " ".join(run.output.split())


def test_rows_it_cannot_draw_are_refused_saying_what_would_do(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = seeded(make_settings)
    out = tmp_path / "p.png"
    cases = {
        "SELECT product_id, price FROM ticks": "the first column is the plot's x axis, a time or a number: "
        "product_id is neither",
        "SELECT event_time, product_id FROM ticks": "no number column to plot against event_time",
        "SELECT event_time, price FROM ticks WHERE false": "the query gave no rows: nothing to plot",
        "SELECT event_time, (tick_id % 13)::VARCHAR AS k, price FROM ticks": "13 distinct values of k: a "
        "panel draws at most 12 lines; narrow it with WHERE",
        "SELECT event_time, " + ", ".join(f"price AS p{i}" for i in range(9)) + " FROM ticks": "9 number "
        "columns (p0, p1, p2, p3, p4, p5, p6, p7, p8): a plot stacks at most 8; select fewer",
    }
    for query, said in cases.items():
        run = CliRunner().invoke(main, ["sql", query, "--plot", str(out)], env=env_for(s))
        assert run.exit_code == 1 and said in " ".join(run.output.split()), (query, run.output)
    assert not out.exists()
    run = CliRunner().invoke(main, ["sql", "SELECT 1", "--plot", str(tmp_path / "p.txt")], env=env_for(s))
    assert (
        run.exit_code == 2
        and "a plot is written as .png, .svg, .pdf (by its suffix): not p.txt" in run.output
    )
    run = CliRunner().invoke(main, ["sql", "--plot", str(out), "-i"], input="SELECT 1;\n", env=env_for(s))
    assert (
        run.exit_code == 2 and "--plot draws one query's rows: give it as QUERY or with --file" in run.output
    )


def test_a_line_stops_where_the_data_does() -> None:
    times = pd.to_datetime([0, 1, 2, 3, 4, 500, 501], unit="s", utc=True)
    frame = pd.DataFrame({"t": times, "v": [1, 2, 3, 4, 5, 6, 7]})
    broken = plot._broken_at_gaps(frame, "t", ["v"])
    assert len(broken) == 8 and broken["v"].isna().sum() == 1
    blank = broken[broken["v"].isna()]["t"].iloc[0]
    assert times[4] < blank < times[5]  # inside the gap, so the lines on both sides stay whole
    assert broken["t"].is_monotonic_increasing
    # steady steps, or too few points to have a typical one: drawn as given
    steady = frame.iloc[:5]
    assert plot._broken_at_gaps(steady, "t", ["v"]).equals(steady)
    assert plot._broken_at_gaps(frame.iloc[4:6], "t", ["v"]).equals(frame.iloc[4:6])


def test_numbers_across_and_a_single_line_without_a_legend(tmp_path: Path, text_in_svg: None) -> None:
    con = duckdb.connect()
    rel = con.sql("SELECT range AS n, range * range AS sq FROM range(10)")
    said = plot.plot(rel, tmp_path / "sq.svg", "squares over $a, $b")
    assert said == f"plotted 10 rows of sq against n: {tmp_path / 'sq.svg'}"
    svg = (tmp_path / "sq.svg").read_text()
    assert ">sq<" in svg and ">n<" in svg and ">squares over $a, $b<" in svg and "legend" not in svg


def test_a_long_query_is_cut_in_the_title_and_says_so(tmp_path: Path, text_in_svg: None) -> None:
    con = duckdb.connect()
    query = "SELECT range AS n,\n    range * 2 AS twice\nFROM range(10) -- " + "x" * 200
    plot.plot(con.sql(query), tmp_path / "t.svg", query)
    svg = (tmp_path / "t.svg").read_text()
    shown = "SELECT range AS n, range * 2 AS twice FROM range(10) -- " + "x" * (119 - 56) + "…"
    assert len(shown) == 120 and f">{shown}<" in svg


def test_the_shells_plot_draws_the_next_statement_then_prints_again(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = seeded(make_settings)
    out = tmp_path / "shell.png"
    script = f".plot {out}\nSELECT event_time, product_id, price FROM ticks;\nSELECT 41 + 1 AS answer;\n"
    run = CliRunner().invoke(main, ["sql", "-i"], input=script, env=env_for(s))
    assert run.exit_code == 0, run.output
    assert f"plotted 600 rows (2 lines by product_id) of price against event_time: {out}" in " ".join(
        run.output.split()
    )
    assert out.read_bytes()[:4] == b"\x89PNG" and "answer" in run.stdout and "42" in run.stdout
    run = CliRunner().invoke(main, ["sql", "-i"], input=".plot out.txt\n", env=env_for(s))
    assert (
        run.exit_code == 1
        and "a plot is written as .png, .svg, .pdf (by its suffix): not out.txt" in run.output
    )


def test_only_text_columns_split_lines_others_are_left_out_by_name(tmp_path: Path) -> None:
    con = duckdb.connect()
    rel = con.sql(
        "SELECT range AS n, range * 2 AS v, range % 2 = 0 AS even, '10:00'::TIME + to_seconds(range) AS at, "
        "[range] AS l FROM range(6)"
    )
    # each time of day was a line of its own, with a legend entry: six lines of one point
    said = plot.plot(rel, tmp_path / "v.png", "v")
    assert said == (
        "plotted 6 rows (2 lines by even) (left out, neither a number nor text: at TIME, l BIGINT[]) "
        f"of v against n: {tmp_path / 'v.png'}"
    )
