"""Whether a network service answers at all: a TCP connect, so a refused port fails in milliseconds.

Clients retry a refused connection for seconds (librdkafka 10 s, redis-py 10 s) before they give up;
a command that needs the service checks here first and says what to do.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable


def unreachable(addresses: Iterable[tuple[str, int]], timeout: float) -> str | None:
    """Why none of ``addresses`` (host, port) accepts a TCP connection, or None when one does."""
    reasons = []
    for host, port in addresses:
        try:
            with socket.create_connection((host or "localhost", port), timeout=timeout):
                return None
        except OSError as exc:
            reasons.append(f"{host}:{port}: {exc.strerror or exc}")
    return "; ".join(reasons) or None
