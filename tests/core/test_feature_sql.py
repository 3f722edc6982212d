"""Fingerprints of feature SQL (tickstore.feature_sql): what a model's training set was computed by."""

from __future__ import annotations

from tickstore.feature_sql import SQL_DIR, fingerprints


def test_a_fingerprint_ignores_comments_layout_and_keyword_case_but_not_what_the_sql_computes() -> None:
    sql = (SQL_DIR / "ticks_60s.sql").read_text()
    reworded = "-- a new comment\n" + sql.replace("\n", "\n    ").replace("SELECT", "select") + ";"
    longer_gap = sql.replace("60000000", "61000000")  # returns across gaps of up to 61 s
    renamed = sql.replace("AS ret_std_60s", "AS ret_sd_60s")
    assert longer_gap != sql and renamed != sql
    same, also_same, other, other_name, broken = fingerprints(
        [sql, reworded, longer_gap, renamed, "SELECT nothing FROM"]
    )
    assert same == also_same and len(same) == 64
    assert len({same, other, other_name}) == 3
    # text DuckDB can't parse still gets one, from the text itself
    assert broken.startswith("text:") and broken != fingerprints(["SELECT nothing FROM;"])[0]
