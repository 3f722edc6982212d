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


def free_port(preferred: int = 0) -> int:
    """A loopback TCP port nothing listens on now: ``preferred`` if it is free, else one the system picks."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


KAFKA_PORT = 9092  # librdkafka's default for a server given without one


def kafka_servers(bootstrap: str) -> list[tuple[str, int]]:
    """The (host, port) of each server of a Kafka bootstrap.servers list, as librdkafka reads it: an
    optional ``protocol://`` prefix, a port defaulting to 9092, IPv6 hosts in brackets. ValueError
    saying which server is not one."""
    servers = []
    for server in bootstrap.split(","):
        address = server.strip().split("://")[-1]
        host, colon, port = address.rpartition(":")
        if not colon or "]" in port:  # no port given, or a bare bracketed IPv6 address
            host, port = address, str(KAFKA_PORT)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"{server.strip()!r} is not HOST[:PORT] (e.g. kafka-1:9092; several comma-separated)"
            )
        servers.append((host, int(port)))
    return servers
