"""Open-loop HTTP load for the serve benchmark: POSTs on a fixed schedule, latency by nearest rank.

The schedule is kept whatever the server does, from a pool of keep-alive connections on one asyncio
loop; a request waiting for a free connection counts that wait, so slow responses can't hide the
ones queued behind them. Also reads the host's CPU steal, which tells a noisy neighbour from a slow
server.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any


def load(
    port: int, path: str, bodies: list[bytes], rate: float, seconds: float, conns: int = 32
) -> dict[str, Any]:
    """POST at ``rate`` per second for ``seconds``, on a fixed schedule whatever the responses do.

    One asyncio loop with a pool of keep-alive connections: a thread per request would measure the
    client's own GIL contention (up to the 5 ms switch interval) as server latency.
    """
    # The client's own pauses would count as server latency. This process has Feast, MLflow, pandas and
    # XGBoost loaded: one full collection of that heap stalled the loop for 485 ms mid-run (measured),
    # and with it frozen, collecting the run's own tasks still took up to 23 ms. So the collector is off
    # while the load runs (a run's garbage is a few MB) and any collection that happens anyway is timed.
    gc.collect()
    gc.freeze()
    gc.disable()
    pauses: list[float] = []
    began = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - began[0])

    gc.callbacks.append(timed)
    before = cpu_jiffies()
    try:
        result = asyncio.run(_load(port, path, bodies, rate, seconds, conns))
    finally:
        gc.callbacks.remove(timed)
        gc.enable()
        gc.collect()
    result["client_gc_max_ms"] = max(pauses, default=0.0) * 1000
    result["steal_pct"] = steal_pct(before, cpu_jiffies())
    return result


def cpu_jiffies() -> list[int] | None:
    """The machine's CPU time counters (the `cpu` line of /proc/stat); None off Linux."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_pct(before: list[int] | None, after: list[int] | None) -> float | None:
    """Share of CPU time the hypervisor gave to other guests between two samples (a VM's noisy neighbours).

    A run whose latency jumps while steal is high was slowed by the host, not by the code under test.
    """
    if before is None or after is None or len(before) < 8:
        return None
    delta = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(delta[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return 100 * delta[7] / total if total else 0.0


async def _load(
    port: int, path: str, bodies: list[bytes], rate: float, seconds: float, conns: int
) -> dict[str, Any]:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(conns):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    lateness: list[float] = []
    in_app: list[float] = []  # the app's own time (Server-Timing total), where the server reports it
    errors: list[int] = []
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(b)}\r\n\r\n"
        ).encode()
        + b
        for b in bodies
    ]

    async def one(due: float, request: bytes) -> None:
        # From when the loop gets to send it: a wait for a free connection (the server falling behind)
        # counts, the event loop's own timer slack (~1 ms, epoll's resolution) does not.
        start = time.perf_counter()
        reader, writer = await pool.get()
        status = 0
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            headers = dict(line.lower().split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
            length = int(headers[b"content-length"])
            timing = headers.get(b"server-timing", b"")
            if b"total;dur=" in timing:
                in_app.append(float(timing.split(b"total;dur=")[1].split(b",")[0]) / 1000)
            await reader.readexactly(length)
            pool.put_nowait((reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
            writer.close()
            pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
        latencies.append(time.perf_counter() - start)
        lateness.append(start - due)
        if status != 200:
            errors.append(status)

    n = int(rate * seconds)
    tasks = []
    t0 = time.perf_counter() + 0.05
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, requests[i % len(requests)])))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    in_app_p99 = quantile(in_app, 0.99) if in_app else None
    return {
        "requests": n,
        "errors": len(errors),
        "error_statuses": sorted(set(errors)),
        "p50_ms": quantile(latencies, 0.5) * 1000,
        "p99_ms": quantile(latencies, 0.99) * 1000,
        "client_late_p99_ms": quantile(lateness, 0.99) * 1000,
        "in_app_p99_ms": None if in_app_p99 is None else in_app_p99 * 1000,
    }


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank, no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
