"""Drift reports side by side, each in a process of its own outside the terminal's process group.

Evidently is pure Python (plotly figures, mostly), so two reports in one process took twice as long as
two side by side on two cores. A worker of a multiprocessing pool shares the terminal's process group:
Ctrl-C reached each one too, which printed its KeyboardInterrupt's traceback from wherever its start-up
was. Apart, only `tickstore train` gets the Ctrl-C, and it ends the workers.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from tickstore.errors import TickstoreError
from training.drift import DriftResult, drift_report


def run_apart(jobs: dict[str, tuple[Any, ...]], tmp: Path) -> dict[str, DriftResult | str]:
    """Each job's `drift_report(*args)` (by name), run side by side: its result, or why its rows could
    not be compared (the report's ValueError)."""
    procs = {}
    try:
        for name, args in jobs.items():
            (tmp / f"{name}.job").write_bytes(pickle.dumps(args))
            with (tmp / f"{name}.err").open("wb") as err:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "training.drift_jobs", str(tmp / name)],
                    stdin=subprocess.DEVNULL,
                    stderr=err,
                    process_group=0,  # a group of its own: the terminal's Ctrl-C is not sent to it
                )
        for proc in procs.values():
            proc.wait()
    finally:  # an interrupt (or any error) here ends the workers with it
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results: dict[str, DriftResult | str] = {}
    for name, proc in procs.items():
        if proc.returncode != 0:
            said = (tmp / f"{name}.err").read_text(errors="replace").strip().splitlines()
            raise TickstoreError(  # the CLI prints it as an error, not a traceback
                f"the {name} drift report failed (exit code {proc.returncode}): {said[-1] if said else ''}"
            )
        results[name] = pickle.loads((tmp / f"{name}.result").read_bytes())  # noqa: S301 - our own file
    return results


def main(base: str) -> None:
    """A worker: the report of ``base``.job's arguments, its result pickled to ``base``.result."""
    args = pickle.loads(Path(f"{base}.job").read_bytes())  # noqa: S301 - written by run_apart
    result: DriftResult | str
    try:
        result = drift_report(*args)
    except ValueError as exc:  # rows that can't tell drift: said with the run, not an error
        result = str(exc)
    Path(f"{base}.result").write_bytes(pickle.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
