"""What `tickstore feast ... describe` adds to Feast's: a `DuckDBSource`'s options decoded, its SQL readable.

Feast prints a custom source's options as the base64 of their bytes (`customOptions.configuration`),
so `feast feature-views describe ticks_60s` showed one line of base64 where the view's SQL is.
`DuckDBSource` keeps that string form (Feast's remote offline store parses it back), so the decoding
happens here, on the text Feast printed.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import yaml

from tickstore_feast.source import CLASS_PATH

NOTE = "  # DuckDBSource options, decoded by tickstore (Feast prints them base64-encoded)"


class _Dumper(yaml.SafeDumper):
    """Feast's YAML layout, with multi-line strings (a view's SQL) as literal blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def _options(encoded: Any) -> dict[str, Any] | None:
    """A DuckDBSource's options from Feast's base64 of them, or None if they are something else."""
    if not isinstance(encoded, str):
        return None
    try:
        options = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        return None
    return options if isinstance(options, dict) else None


def _decode(node: Any) -> bool:
    """Replace, in place, each DuckDBSource's encoded options below ``node``; whether any was."""
    found = False
    if isinstance(node, dict):
        custom = node.get("customOptions")
        if node.get("dataSourceClassType") == CLASS_PATH and isinstance(custom, dict):
            options = _options(custom.get("configuration"))
            if options is not None:
                if options.get("query"):
                    # PyYAML writes a literal block only for lines without trailing blanks
                    options["query"] = (
                        "\n".join(line.rstrip() for line in options["query"].splitlines()) + "\n"
                    )
                custom["configuration"] = options
                found = True
        for value in node.values():
            found = _decode(value) or found
    elif isinstance(node, list):
        for value in node:
            found = _decode(value) or found
    return found


def readable(printed: str) -> str:
    """Feast's `describe` output with every DuckDBSource's options decoded (the SQL as a block of
    lines, `lookback_s`, `ties_equal`, `table`); anything else (an error, another kind of source)
    as printed."""
    try:
        data = yaml.safe_load(printed)
    except yaml.YAMLError:
        return printed
    if not _decode(data):
        return printed
    out = yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=False, width=10_000)
    lines = (line + NOTE if line.strip() == "configuration:" else line for line in out.splitlines())
    # Feast prints the YAML with print(), a blank line after it
    return "\n".join(lines) + ("\n\n" if printed.endswith("\n\n") else "\n")
