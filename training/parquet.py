"""Parquet read into pandas without leaving Python objects to Arrow's threads.

``pd.read_parquet(path)`` opens a local file as a Python file object and hands it to Arrow, whose
reader prefetches byte ranges on its I/O threads. The last of those reads can finish, and drop the
Python buffer it holds, on an Arrow thread after the call has returned; dropping it takes the GIL, and
in a process already exiting Python ends that thread mid-C++, which aborts the whole process
("terminate called without an active exception"). Seen in `tickstore monitor drift`, which reads its
rows and exits: exit code 134 in 6 of 125 runs with a second run beside it, 0 of 200 after
(docs/decisions.md). Arrow opening the file itself, or reading bytes it owns, keeps every buffer
Arrow's own.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def read_parquet(source: Path | bytes) -> pd.DataFrame:
    """The Parquet file at ``source`` (or its bytes, piped in) as a DataFrame, as pd.read_parquet reads it."""
    if isinstance(source, Path):
        return pq.read_table(str(source)).to_pandas()  # a str: Arrow's own local file, not Python's
    owned = pa.BufferOutputStream()  # a copy into Arrow's memory: no buffer of a Python bytes object
    owned.write(source)
    return pq.read_table(pa.BufferReader(owned.getvalue())).to_pandas()
