"""DuckDB's "Did you mean" for a wrong table name, made to point at the lake's names first."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_MISSING = re.compile(r"Table (?:Function )?with name (\w+) does not exist")
_HINT = re.compile(r'\nDid you mean "[^"\n]*"\?')


def nearest_lake_name(message: str, names: Iterable[str]) -> str:
    """``message`` (a DuckDB catalog error) with its "Did you mean" naming the nearest of ``names``
    (the lake's tables and feature views) where one is near, else without a pg_catalog hint.

    DuckDB suggests from every catalog but the feature views (which are table macros): for a
    mistyped `tick_60s(...)` it offered "duckdb_logs", for `nope` "pg_enum", for `tick_60s` "ticks".
    """
    missing = _MISSING.search(message)
    if not missing:
        return message
    near = difflib.get_close_matches(missing.group(1).lower(), list(names), n=1, cutoff=0.6)
    hint = _HINT.search(message)
    if near:
        ours = f'\nDid you mean "{near[0]}"?'
        if hint:
            return message[: hint.start()] + ours + message[hint.end() :]
        return message + ours
    if hint and hint.group().startswith('\nDid you mean "pg_'):  # PostgreSQL's catalog: nobody means it
        return message[: hint.start()] + message[hint.end() :]
    return message
