"""How query results print: tables a terminal can read, CSV and JSON a program can."""

from __future__ import annotations

import io
import json

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from cli.results import PIPE_WIDTH, print_rows, show_table


def test_json_output_takes_every_duckdb_type(capsys: pytest.CaptureFixture[str]) -> None:
    rel = duckdb.sql(
        "SELECT [1.5::DECIMAL(4,2)] AS l, {'a': 'nan'::DOUBLE} AS s, 'inf'::DOUBLE AS x, "
        "INTERVAL 3 SECOND AS i, '12:30'::TIME AS t, '00000000-0000-0000-0000-000000000001'::UUID AS u, "
        "'{\\x00\\xFF\\xC3\\xA9}'::BLOB AS b"
    )
    print_rows(rel.columns, rel, "json")
    # an INTERVAL was a TypeError traceback; NaN and Infinity came out as JSON no parser accepts
    record = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"wrote {c}"))
    assert record == {
        "l": ["1.5"],
        "s": {"a": None},
        "x": None,
        "i": "0:00:03",
        "t": "12:30:00",
        "u": "00000000-0000-0000-0000-000000000001",
        "b": "{\x00\\xffé}",  # a byte that is no UTF-8 as \xff: it was U+FFFD, which said nothing of it
    }


def test_a_table_fetches_only_the_rows_it_shows(capsys: pytest.CaptureFixture[str]) -> None:
    rel = duckdb.sql("SELECT range AS n FROM range(100000)")
    print_rows(rel.columns, rel, "table", limit=3)
    out = capsys.readouterr().out
    assert "│ 2 │" in out and "│ 3 │" not in out and "more rows than --limit 3" in out
    assert len(rel.fetchall()) > 50000  # most of the result was never fetched: it is still there to read
    rel = duckdb.sql("SELECT range AS n FROM range(3)")
    print_rows(rel.columns, rel, "table", limit=3)
    assert "more rows" not in capsys.readouterr().out


def test_an_empty_table_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    rel = duckdb.sql("SELECT range AS n FROM range(0)")
    print_rows(rel.columns, rel, "table")
    assert capsys.readouterr().out.rstrip().endswith("(no rows)")
    rel = duckdb.sql("SELECT range AS n FROM range(1)")
    print_rows(rel.columns, rel, "table")
    assert "(no rows)" not in capsys.readouterr().out
    print_rows(["n"], [], "csv")  # CSV and JSON stay bare: a program reads them
    assert capsys.readouterr().out.split() == ["n"]


def wide_rows(n: int = 2) -> duckdb.DuckDBPyRelation:
    """``n`` rows of 13 columns: a product, a time and eleven numbers, as a feature view gives them."""
    doubles = ", ".join(f"1.3058772852629937e-07 * {i + 1} AS feature_{i}" for i in range(8))
    return duckdb.sql(
        f"SELECT 'ETH-USD' AS product_id, TIMESTAMPTZ '2026-04-03 22:20:00.010699+00' AS event_time, "
        f"{doubles}, 149 + range AS n, 67468.2574::DOUBLE AS price, 'nan'::DOUBLE AS x FROM range({n})"
    )


def test_a_wide_table_in_a_pipe_keeps_each_row_on_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    rel = wide_rows()
    print_rows(rel.columns, rel, "table")
    lines = capsys.readouterr().out.splitlines()
    # folded to 200 characters, a value could fall over two lines; cut to fit, the first feature
    # read "1.3058772852629…", seven orders of magnitude off
    assert len(lines) == 6  # top border, header, rule, two rows, bottom border
    cells = [c.strip() for c in lines[3].split("│")[1:-1]]
    assert cells[:3] == ["ETH-USD", "2026-04-03T22:20:00.010699+00:00", "1.305877285e-07"]
    assert cells[-3:] == ["149", "67468.2574", "nan"]  # 10 significant digits: a price keeps its cents
    assert [c.strip() for c in lines[1].split("┃")[1:-1]] == rel.columns


def shown(rel: duckdb.DuckDBPyRelation, width: int) -> str:
    """``rel`` as a terminal ``width`` characters wide shows it."""
    out = io.StringIO()
    show_table(rel.columns, rel.fetchall(), None, Console(file=out, width=width))
    return out.getvalue()


def test_rows_too_wide_for_the_terminal_print_a_block_each() -> None:
    rel = wide_rows()
    text = shown(rel, 80)
    # folded into 13 columns in 80 characters, each value stood a few letters a line
    before, *blocks = text.split("── row ")
    assert before == "" and [b.split()[0] for b in blocks] == ["1", "2"]
    pairs = [line.split() for line in blocks[1].splitlines()[1:14]]
    assert [p[0] for p in pairs] == rel.columns and all(len(p) == 2 for p in pairs)  # each value whole
    values = dict(pairs)
    assert values["event_time"] == "2026-04-03T22:20:00.010699+00:00"
    assert (values["feature_0"], values["n"], values["price"]) == ("1.305877285e-07", "150", "67468.2574")
    assert "(13 columns don't fit in 80 characters: a block per row; --format csv gives a line per row)" in (
        " ".join(text.split())
    )


def test_a_table_folds_its_headers_before_any_value() -> None:
    names = ("spread_bps_mean_60s", "trade_intensity_60s", "imbalance_mean_60s", "realized_var_60s")
    rel = duckdb.sql(
        "SELECT 'ETH-USD' AS product_id, TIMESTAMPTZ '2026-04-03 22:20:00.010699+00' AS event_time, "
        + ", ".join(f"-0.06666644445 * {i + 1} AS {n}" for i, n in enumerate(names))
        + " FROM range(2)"
    )
    text = shown(rel, 120)  # the headers need 133 characters, the values 114
    lines = text.splitlines()
    assert "── row" not in text and max(map(len, lines)) <= 120
    # rich alone folded the widest column, the time, over two lines ("2026-04-03T22:20:00.01" "0699+00:00")
    body = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    values = ["-0.06666644445", "-0.1333328889", "-0.19999933335", "-0.2666657778"]
    assert body == [["ETH-USD", "2026-04-03T22:20:00.010699+00:00", *values]] * 2
    header = [line.split("┃")[1:-1] for line in lines if line.startswith("┃")]
    assert len(header) == 2  # each header folded onto the same two lines at most
    assert ["".join(parts).replace(" ", "") for parts in zip(*header, strict=True)] == rel.columns


def test_a_table_the_terminal_fits_stays_a_table() -> None:
    rel = wide_rows()
    assert "── row" not in shown(rel, 400)
    narrow = duckdb.sql("SELECT 'BTC-USD' AS product_id, 3 AS ticks")
    assert "── row" not in shown(narrow, 30)
    # one column has nowhere to go: folded, as before
    assert "── row" not in shown(duckdb.sql("SELECT repeat('x', 100) AS raw"), 30)


def test_text_that_reads_as_rich_markup_prints_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    # a value "[/x]" stopped the command with rich's MarkupError; "[red]x" lost its tag
    rel = duckdb.sql("""SELECT '[/x]' AS "[b]v", '[red]x' AS w, 'a [bold]b[/bold] c' AS z""")
    print_rows(rel.columns, rel.fetchall(), "table")
    lines = capsys.readouterr().out.splitlines()
    assert [c.strip() for c in lines[1].split("┃")[1:-1]] == ["[b]v", "w", "z"]
    assert [c.strip() for c in lines[3].split("│")[1:-1]] == ["[/x]", "[red]x", "a [bold]b[/bold] c"]
    blocks = shown(duckdb.sql("""SELECT '[/x]' AS "[b]v", repeat('[red]x', 5) AS w"""), 20)
    assert blocks.splitlines()[1].split() == ["[b]v", "[/x]"]  # a block per row: the value too wide
    assert "w[red]x[red]x[red]x[red]x[red]x(2columns" in "".join(blocks.split())


def test_a_huge_value_in_a_pipe_pads_no_other_row_to_its_width(capsys: pytest.CaptureFixture[str]) -> None:
    # every cell of a column is padded to its widest: one 1 MB rejected message made each row 1 MB
    rel = duckdb.sql(
        "SELECT range AS n, CASE WHEN range = 0 THEN repeat('x', 5000) ELSE 'ok' END AS raw FROM range(50)"
    )
    print_rows(rel.columns, rel.fetchall(), "table")
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= PIPE_WIDTH and len(out) < 5000 + 50 * 200
    assert "".join(out.split()).count("x" * 5000) == 1  # the value whole, once


def test_json_keeps_every_column_of_repeated_names(capsys: pytest.CaptureFixture[str]) -> None:
    # a join's `SELECT *` names product_id twice: one object held the second side's value only
    rel = duckdb.sql("SELECT 1 AS a, 2 AS a, 3 AS A, 4 AS a_1, 5 AS a")
    print_rows(rel.columns, rel, "json")
    out, err = capsys.readouterr()
    assert json.loads(out) == {"a": 1, "a_2": 2, "A": 3, "a_1": 4, "a_3": 5}
    assert err.splitlines() == [
        "json: column 'a' again, written as 'a_2' (an object holds a key once)",
        "json: column 'a' again, written as 'a_3' (an object holds a key once)",
    ]


def test_a_table_shows_control_characters_rather_than_sending_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a rejected message is whatever reached the broker: its ESC [2J cleared the terminal, and a
    # carriage return was dropped unseen
    rel = duckdb.sql(
        "SELECT chr(27) || '[2J' || chr(7) AS x, 'a' || chr(13) || 'b' || chr(9) || 'c' AS y, "
        "'two' || chr(10) || 'lines' AS z, chr(133) AS " + '"' + "n" + chr(27) + '"'
    )
    print_rows(rel.columns, rel.fetchall(), "table")
    out = capsys.readouterr().out
    assert not any(ch in out for ch in "\x1b\x07\r\t\x85")
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]
    assert cells == [["\\x1b[2J\\x07", "a\\x0db\\x09c", "two", "\\x85"], ["", "", "lines", ""]]
    assert "n\\x1b" in out
    print_rows(rel.columns, rel.fetchall(), "csv")  # CSV and JSON give the text as it is
    assert "\x1b[2J\x07" in capsys.readouterr().out


words = st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S"]), min_size=1, max_size=12)


@given(
    names=st.lists(words, min_size=1, max_size=8),
    values=st.lists(st.lists(st.lists(words, max_size=3).map(" ".join), min_size=8, max_size=8), max_size=4),
    width=st.integers(20, 200),
)
@settings(max_examples=300, deadline=None)
def test_any_table_stays_within_the_terminal_and_splits_no_word(
    names: list[str], values: list[list[str]], width: int
) -> None:
    rows = [tuple(row[: len(names)]) for row in values]
    out = io.StringIO()
    show_table(names, rows, None, Console(file=out, width=width))
    lines = out.getvalue().splitlines()
    assert all(cell_len(line) <= width for line in lines)
    if rows and not any("── row" in line for line in lines):  # a table: each value's words whole
        # but one wider than a one-column table's whole room (East Asian letters take two cells
        # each): folded there, and in a block of its own too
        room = width - 3 * len(names) - 1
        for word in {w for row in rows for value in row for w in value.split()}:
            assert cell_len(word) > room or any(word in line for line in lines), word


def test_number_columns_are_right_aligned_by_their_type(capsys: pytest.CaptureFixture[str]) -> None:
    # a column NULL in every row shown was left-aligned, as text
    rel = duckdb.sql("SELECT NULL::DOUBLE AS price, 'x' AS product, 2::UBIGINT AS n")
    print_rows(rel.columns, rel, "table")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "┃ price ┃ product ┃ n ┃" and lines[3] == "│  NULL │ x       │ 2 │"
