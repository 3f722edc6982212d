"""`tickstore feast ... describe`: a DuckDBSource's options decoded in Feast's printed YAML."""

from __future__ import annotations

from datetime import timedelta

import yaml
from feast import FileSource

from tickstore_feast.describe import readable
from tickstore_feast.source import DuckDBSource


def feast_printed(source: object) -> str:
    """What Feast's `data-sources describe` prints for ``source`` (its own yaml.dump of str(source))."""
    return yaml.dump(yaml.safe_load(str(source)), default_flow_style=False, sort_keys=False) + "\n"


def test_a_sql_source_shows_its_sql_as_lines_and_its_options() -> None:
    sql = "-- v: a view\n-- lookback: 10 s\nSELECT product_id, event_time,   \n    1 AS n\nFROM ticks\n"
    printed = feast_printed(DuckDBSource(name="v", query=sql, ties_equal=True))
    assert "SELECT" not in printed  # Feast's own: base64

    shown = readable(printed)
    assert (
        "    query: |\n      -- v: a view\n      -- lookback: 10 s\n      SELECT product_id, event_time,\n"
        in shown
    )
    assert "configuration:  # DuckDBSource options, decoded by tickstore" in shown
    options = yaml.safe_load(shown)["customOptions"]["configuration"]
    # trailing blanks are dropped (a literal block can't show them), nothing else
    assert options == {
        "query": sql.replace(",   \n", ",\n"),
        "table": None,
        "lookback_s": 10.0,
        "ties_equal": True,
    }
    # everything around the options as Feast printed it, the blank line after it too
    assert shown.endswith("\n\n")
    assert (
        yaml.safe_load(shown)["name"] == "v"
        and yaml.safe_load(shown)["meta"] == yaml.safe_load(printed)["meta"]
    )


def test_a_table_source_is_decoded_too() -> None:
    shown = readable(feast_printed(DuckDBSource(table="ticks", lookback=timedelta(0))))
    options = yaml.safe_load(shown)["customOptions"]["configuration"]
    assert options == {"query": None, "table": "ticks", "lookback_s": 0.0, "ties_equal": False}


def test_other_sources_and_errors_are_left_as_feast_printed_them() -> None:
    printed = feast_printed(FileSource(name="f", path="/tmp/x.parquet", timestamp_field="t"))
    assert readable(printed) == printed
    error = "Data source nope does not exist in project tickstore\n"
    assert readable(error) == error
    not_yaml = "spec: [unclosed\n"
    assert readable(not_yaml) == not_yaml
