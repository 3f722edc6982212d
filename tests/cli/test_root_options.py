"""cli/root_options.py: tickstore's own options read after the command, as the root group parses."""

from __future__ import annotations

import pytest

from cli.root_options import after_command, asks_help, hoisted


@pytest.mark.parametrize(
    ("given", "read"),
    [
        (["status", "--home", "d", "-v"], ["--home", "d", "-v", "status"]),
        (["-v", "ingest", "replay", "f", "--home=d"], ["-v", "--home=d", "ingest", "replay", "f"]),
        (["--home", "d", "sql", "--verbose", "SELECT 1"], ["--home", "d", "--verbose", "sql", "SELECT 1"]),
        # what a command takes after `--` is its own; Feast's `materialize -v` names views
        (["sql", "--", "-v"], ["sql", "--", "-v"]),
        (["feast", "materialize", "-v", "ticks_60s"], ["feast", "materialize", "-v", "ticks_60s"]),
        (["feast", "apply", "--home", "d"], ["--home", "d", "feast", "apply"]),
        (["status", "--home"], ["status", "--home"]),  # no value: the command's, as click says
        (["--home", "d"], ["--home", "d"]),
    ],
)
def test_root_options_after_the_command_are_read_before_it(given: list[str], read: list[str]) -> None:
    assert hoisted(given) == read


@pytest.mark.parametrize(
    ("given", "after"),
    [
        (["status", "--home"], ["--home"]),
        (["--home", "d", "dataset", "build", "-v"], ["build", "-v"]),
        (["sql", "--", "--home"], None),  # the command's own words
        (["--home", "d"], None),  # no command yet: the root's options complete as the root's
        ([], None),
    ],
)
def test_the_words_after_the_command_where_root_options_are_read(
    given: list[str], after: list[str] | None
) -> None:
    assert after_command(given) == after


@pytest.mark.parametrize(
    ("given", "helps"),
    [
        ([], True),
        (["--home", "d"], True),
        (["sink", "--help"], True),
        (["broker", "start", "-h"], True),
        (["broker"], True),  # a group named alone prints its help
        (["sink"], False),
        (["broker", "start"], False),
        (["sql", "--", "--help"], False),  # the command's own words
        (["--home", "d", "train", "--start", "x"], False),
    ],
)
def test_words_that_ask_for_help_only(given: list[str], helps: bool) -> None:
    from cli.main import main

    assert asks_help(given, main.commands) is helps
