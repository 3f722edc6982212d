"""What a product id may be: the sink's rule, for a command to check an id before it sends one."""

from __future__ import annotations

import re

# ingest/wire.sql holds the same pattern and words as literals (the sink's SQL, planned once per
# connection, binds no settings); tests/core/test_products.py keeps them alike
PATTERN = "[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}"
RULE = "a letter or digit, then letters, digits, - _ . : or /; at most 64"


def is_product_id(text: str) -> bool:
    """Whether the sink takes ``text`` as a product id."""
    return re.fullmatch(PATTERN, text) is not None
