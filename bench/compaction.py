"""Benchmark: a live sink's lake over simulated days, compacted as the sink does: what it writes and keeps.

Simulated ticks go through the sink's own writer in batches, each standing for ``--batch-s`` seconds
of a live feed of ``--rate`` ticks/s, and the lake is compacted every ``--compact-every-s`` of that
feed time, as `tickstore sink` does. Run twice on the same ticks, each in a fresh process and lake:
tickstore's tiered merge, then the peer, one merge of every data file (tickstore's compaction until
stop 61: DuckLake's ``ducklake_merge_adjacent_files`` with no size bounds). Prints, for each, what
compaction wrote, the lake's data on disk (nothing expires within a run: a sink keeps the merged-away
files for the snapshots' retention, 7 days by default), the live data files, the time spent
compacting and DuckDB's memory after the run, then the ratios.

    make bench            # or: .venv/bin/python bench/compaction.py --days 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest import simulate, wire  # noqa: E402
from ingest.sink import compaction  # noqa: E402
from ingest.sink.writer import LakeWriter  # noqa: E402
from tickstore import lake  # noqa: E402
from tickstore.lake import LAKE  # noqa: E402
from tickstore.settings import Settings  # noqa: E402

POLICIES = ("tiered", "merge-all")


def disk_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def run_policy(policy: str, args: argparse.Namespace) -> dict[str, float]:
    """Feed the simulated days into a fresh lake under ``policy``; the figures, as a dict."""
    if policy == "merge-all":  # the peer: what compaction.compact merged before the tiers
        compaction.merge_tiers = lambda con, table: con.execute(
            f"CALL ducklake_merge_adjacent_files('{LAKE}', $t)", {"t": table}
        )
    home = Path(tempfile.mkdtemp(prefix="tickstore-bench-compaction-"))
    try:
        s = Settings(home=home)
        con = lake.connect(s)
        writer = LakeWriter(con, 1 << 20)
        per_batch = max(1, round(args.rate * args.batch_s))
        batches = round(args.days * 86_400 / args.batch_s)
        every = max(1, round(args.compact_every_s / args.batch_s))
        ticks = simulate.generate(simulate.SimConfig(n_ticks=per_batch * batches, seed=args.seed))
        written, times, offset = 0, [], 0
        for b in range(batches):
            lines = [next(ticks)[1] for _ in range(per_batch)]
            n = len(lines)
            writer.write(
                wire.raw_table(["ticks.raw"] * n, [0] * n, range(offset, offset + n), [0] * n, lines, 1 << 20)
            )
            offset += n
            if (b + 1) % every == 0:
                before = disk_bytes(s.lake_data)
                started = time.perf_counter()
                compaction.compact(con, 7.0)
                times.append(time.perf_counter() - started)
                written += disk_bytes(s.lake_data) - before  # nothing expires within the run
        live = con.execute(
            "SELECT count(*), sum(data_file_size_bytes) FROM ducklake_list_files($l, 'ticks')", {"l": LAKE}
        ).fetchone()
        memory = con.execute(
            "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() "
            "WHERE tag IN ('EXTERNAL_FILE_CACHE', 'OBJECT_CACHE')"
        ).fetchone()
        rows = con.execute("SELECT count(DISTINCT tick_id) FROM ticks").fetchone()
        assert live is not None and memory is not None and rows is not None
        return {
            "kept": rows[0],
            "ticks": per_batch * batches,
            "batches": batches,
            "compactions": len(times),
            "written": written,
            "disk": disk_bytes(s.lake_data),
            "live_files": live[0],
            "live_bytes": live[1] or 0,
            "p50_s": statistics.median(times) if times else 0.0,
            "max_s": max(times, default=0.0),
            "total_s": sum(times),
            "cache": memory[0],
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=float, default=1.0, help="feed time simulated (default: %(default)s)")
    parser.add_argument(
        "--rate", type=float, default=10.0, help="ticks per second of the live feed (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-s", type=float, default=60.0, help="feed seconds a batch stands for (default: %(default)s)"
    )
    parser.add_argument(
        "--compact-every-s",
        type=float,
        default=300.0,
        help="feed seconds between compactions, as TICKSTORE_COMPACT_EVERY_S (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=7, help="the simulator's seed (default: %(default)s)")
    parser.add_argument("--policy", choices=POLICIES, help=argparse.SUPPRESS)  # one run, in a child
    args = parser.parse_args()
    if args.policy:
        print(json.dumps(run_policy(args.policy, args)))
        return
    figures = {}
    for policy in POLICIES:
        child = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--policy", policy],
            capture_output=True,
            text=True,
            check=True,
        )
        f = figures[policy] = json.loads(child.stdout.splitlines()[-1])
        print(
            f"{policy}: {f['ticks']:,} ticks in {f['batches']:,} batches ({args.days:g} days at "
            f"{args.rate:g} ticks/s), {f['compactions']:,} compactions: wrote {mb(f['written'])}, "
            f"on disk {mb(f['disk'])} for {mb(f['live_bytes'])} of live data in {f['live_files']:,} "
            f"files; compaction p50 {f['p50_s'] * 1000:,.0f} ms, max {f['max_s'] * 1000:,.0f} ms, "
            f"{f['total_s']:,.1f} s in all; DuckDB's file caches {mb(f['cache'])}; "
            f"every tick in the lake: {'yes' if f['kept'] == f['ticks'] else 'NO, ' + format(f['kept'], ',')}"
        )
    ours, peer = figures["tiered"], figures["merge-all"]
    print(
        f"ratio (merge-all / tiered): written {peer['written'] / max(ours['written'], 1):,.1f}x, "
        f"on disk {peer['disk'] / max(ours['disk'], 1):,.1f}x, "
        f"time compacting {peer['total_s'] / max(ours['total_s'], 1e-9):,.1f}x"
    )


if __name__ == "__main__":
    main()
