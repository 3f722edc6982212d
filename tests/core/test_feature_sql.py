"""Fingerprints of feature SQL (tickstore.feature_sql): what a model's training set was computed by."""

from __future__ import annotations

import re

from tickstore.feature_sql import SQL_DIR, fingerprints, same_definition


def test_a_fingerprint_ignores_comments_layout_and_keyword_case_but_not_what_the_sql_computes() -> None:
    sql = (SQL_DIR / "ticks_60s.sql").read_text()
    reworded = "-- a new comment\n" + sql.replace("\n", "\n    ").replace("SELECT", "select") + ";"
    longer_gap = sql.replace("60000000", "61000000")  # returns across gaps of up to 61 s
    renamed = sql.replace("AS ret_std_60s", "AS ret_sd_60s")
    assert longer_gap != sql and renamed != sql
    same, also_same, other, other_name = fingerprints([sql, reworded, longer_gap, renamed])
    assert re.fullmatch(r"[0-9a-f]{64}:[0-9a-f]{64}", same)
    assert same != also_same and same_definition(same, also_same)
    assert not same_definition(same, other) and not same_definition(same, other_name)
    assert not same_definition(other, other_name)


def test_the_same_text_is_the_same_definition_whatever_the_parser_made_of_it() -> None:
    sql = (SQL_DIR / "ticks_10s.sql").read_text()
    (mine,) = fingerprints([sql])
    tree, text = mine.split(":")
    # another DuckDB release may serialize its trees otherwise: the unchanged file still matches
    assert same_definition(f"{'0' * 64}:{text}", mine)
    assert not same_definition(f"{'0' * 64}:{'1' * 64}", mine)
    # text DuckDB can't parse has no tree part, and matches only itself
    broken, also_broken, other = fingerprints(["SELECT nothing FROM", "SELECT nothing FROM", "SELECT x FROM"])
    assert broken.startswith(":") and same_definition(broken, also_broken)
    assert not same_definition(broken, other)
