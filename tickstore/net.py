"""Whether a network service answers at all: a TCP connect, so a refused port fails in milliseconds.

Clients retry a refused connection for seconds (librdkafka 10 s, redis-py 10 s) before they give up;
a command that needs the service checks here first and says what to do.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


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


def host_port(host: str, port: int) -> str:
    """``host:port`` as a URL or gunicorn's bind writes it: an IPv6 address in brackets (`[::1]:8000`;
    gunicorn read `::1:8000` as host `::1:8000` and no port)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


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


@dataclass(frozen=True)
class Listener:
    """A process listening on a TCP port: its pid and command line."""

    pid: int
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        """The command line, shortened to a readable length."""
        line = " ".join([Path(self.argv[0]).name, *self.argv[1:]]) if self.argv else "?"
        return line if len(line) <= 100 else line[:97] + "..."

    def opened(self, fd: int) -> Path | None:
        """The file the process has open as descriptor ``fd`` (its stdout is 1), if it may be read."""
        try:
            return Path(os.readlink(f"/proc/{self.pid}/fd/{fd}"))
        except OSError:
            return None


def listener(port: int, proc: Path = Path("/proc")) -> Listener | None:
    """The process listening on TCP ``port`` (any address), from Linux's /proc; None when none is
    found, on another system, or when the process is another user's (its descriptors can't be read)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXADDR:HEXPORT; state 0A is LISTEN
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:  # another user's process, or gone
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    argv = (entry / "cmdline").read_bytes().split(b"\0")
                    return Listener(int(entry.name), tuple(a.decode(errors="replace") for a in argv if a))
            except OSError:
                continue
    return None
