"""`tickstore.net` and `tickstore.redis_server`: loopback ports, and a redis-server of one's own."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import redis

from tickstore import redis_server
from tickstore.errors import TickstoreError
from tickstore.net import free_port, listener


def test_a_free_port_is_the_one_preferred_unless_it_is_taken() -> None:
    port = free_port()
    assert free_port(port) == port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        other = free_port(port)
        assert other != port
        with socket.socket() as again:
            again.bind(("127.0.0.1", other))  # and that one is free indeed


def test_the_process_listening_on_a_port_is_found() -> None:
    port = free_port()
    assert listener(port) is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        assert listener(port) is None  # bound, not listening: nothing answers there
        taken.listen()
        found = listener(port)
        assert found is not None and found.pid == os.getpid()
        assert found.argv[0] == sys.executable or Path(found.argv[0]).name.startswith("python")
        assert found.opened(taken.fileno()) == Path(f"socket:[{os.fstat(taken.fileno()).st_ino}]")
        with socket.create_connection(("127.0.0.1", port)):  # a client of it is not a listener
            assert listener(port) == found
    assert listener(port) is None


def test_redis_server_answers_and_says_what_to_do_without_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    proc = redis_server.start(port, tmp_path / "redis", databases=4)
    try:
        client = redis.Redis(port=port, db=3)
        assert client.ping() and client.set("k", "v") and client.get("k") == b"v"
        with pytest.raises(redis.ResponseError, match="index is out of range"):
            redis.Redis(port=port, db=4).ping()
    finally:
        proc.terminate()
        proc.wait(10)
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on it
    with pytest.raises(TickstoreError, match=r"redis-server is not installed: `make redis` installs it"):
        redis_server.start(free_port(), tmp_path)
