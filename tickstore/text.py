"""Text for people: counts ("1 batch", "2 new ticks"), and text from outside made safe to show."""

from __future__ import annotations

import re


def count_of(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` (with thousands separators) and ``noun``, plural unless one: "1 worker", "1,200 ticks"."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def size_of(n: float) -> str:
    """Bytes as people read them: "812 B", "4.1 MB", "6.6 GB" (powers of 1,000, as `du --si`)."""
    if abs(n) < 1000:
        return f"{n:,.0f} B"
    units = ["kB", "MB", "GB"]
    n /= 1000
    while abs(n) >= 1000 and len(units) > 1:
        n /= 1000
        units.pop(0)
    return f"{n:,.1f} {units[0]}"


# control characters but a line break, as \xNN: a terminal acts on them (a tab, widened by rich,
# put a table cell past the width measured for it)
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(32), 127, *range(0x80, 0xA0)] if c != 10}


_CONTROLS_BUT_TAB = {c: v for c, v in _CONTROLS.items() if c != 9}


def visible(text: str, tabs: bool = False) -> str:
    """``text`` with its control characters but a line break (and a tab, with ``tabs``) written as
    \\xNN, to show on a terminal.

    A rejected message is whatever reached the broker: its ESC [2J cleared the screen where its
    reason or the value was printed, and a carriage return vanished ("a\\rb" shown as "ab")."""
    return text.translate(_CONTROLS_BUT_TAB if tabs else _CONTROLS)


# a password in a URL (`redis://:pw@host`, `postgresql://user:pw@host/db`) or in Feast's Redis form
# (`host:port,password=pw`), within a longer text too (a URL or an item ends at a blank)
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]*):[^@/\s]*@")
_ITEM_PASSWORD = re.compile(r"(?<=password=)[^,\s]*")
MASK = "***"


def without_passwords(text: str) -> str:
    """``text`` with any password in a URL or a `password=` item shown as ***: an error naming a
    store, a status line or a /readyz answer must not carry one."""
    return _ITEM_PASSWORD.sub(MASK, _URL_PASSWORD.sub(rf"\1:{MASK}@", text))
