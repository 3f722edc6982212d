"""Values settings and command options share: a WebSocket URL, a CPU list like taskset's."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def websocket_url(value: str) -> str:
    """``value`` when it is a ws:// or wss:// URL naming a host; else a ValueError saying so (a URL of
    another kind was retried for ever, as if the network were down)."""
    url = urlsplit(value.strip())
    if url.scheme not in ("ws", "wss") or not url.hostname:
        raise ValueError(f"{value!r} is not a WebSocket URL: give wss://HOST[:PORT][/PATH] (or ws://)")
    return value.strip()


CPU_PART = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def parse_cpus(spec: str) -> frozenset[int] | None:
    """The CPU ids of a list like taskset's (`1`, `0,2-3`); None for an empty one (no restriction)."""
    if not spec.strip():
        return None
    cpus: set[int] = set()
    for part in spec.split(","):
        # ASCII digits only, a range with both ends: int() took `0-` as 0 and an Arabic-Indic ٣ as 3
        if (found := CPU_PART.fullmatch(part.strip())) is None:
            raise ValueError(f"{spec!r} is not a CPU list: write ids and ranges, like `1` or `0,2-3`")
        lo = int(found[1])
        hi = int(found[2] or found[1])
        if lo < 0 or hi < lo:
            raise ValueError(f"{part.strip()!r} in {spec!r} is not a CPU range: write `low-high`, like `0-3`")
        cpus.update(range(lo, hi + 1))
    return frozenset(cpus)
