"""The product-id rule commands check ids by is the sink's own."""

from __future__ import annotations

from importlib import resources

import duckdb
import pytest

from tickstore.products import PATTERN, RULE, is_product_id

WIRE_SQL = resources.files("ingest").joinpath("wire.sql").read_text()


def test_the_rule_is_the_one_wire_sql_rejects_by() -> None:
    assert f"regexp_full_match(product_id, '{PATTERN}')" in WIRE_SQL
    assert f"product_id is not a product id ({RULE}): " in WIRE_SQL


@pytest.mark.parametrize(
    "text",
    [
        "BTC-USD",
        "btc-usd",
        "ES.Z25",
        "A",
        "X" * 64,
        "X" * 65,
        "BTC USD",
        "-BTC",
        "",
        "BTC/USD:1",
        "BTC\n",
        "É-USD",
    ],
)
def test_python_and_duckdb_agree_on_each_id(text: str) -> None:
    (duck,) = duckdb.sql("SELECT regexp_full_match($t, $p)", params={"t": text, "p": PATTERN}).fetchone()  # type: ignore[misc]
    assert is_product_id(text) == duck
