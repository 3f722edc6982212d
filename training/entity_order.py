"""Entity rows built in time order, a chunk at a time, and the training set put back in their order.

A build asks for features a chunk of entity rows at a time, and each chunk's windows are computed over
the ticks its rows span. Rows out of time order (a file shuffled for training, or sorted by product)
made every chunk span the whole range: 3M shuffled rows over 10M ticks took 213 s and 17 GB against
71 s and 7 GB in time order. So such rows are built in time order, each carrying its place in the
entity rows, and the written set is sorted back by that place.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tickstore import lake

# the column that carries each row's place through the build: never one of the output's
PLACE = "__tickstore_entity_row"
RESTORING = "putting the rows back in their order"  # what a progress display says while restore() runs


def time_order(frame: pd.DataFrame, chunk_rows: int) -> np.ndarray | None:
    """The positions of ``frame``'s entity rows in time order (equal times keep their order), or None
    where building them as they are costs no more: one chunk, rows already in time order, or times not
    typed as such (Feast then says what is wrong)."""
    times = frame.get("event_timestamp")
    if len(frame) <= chunk_rows or times is None or not pd.api.types.is_datetime64_any_dtype(times.dtype):
        return None
    if times.is_monotonic_increasing:
        return None
    return np.argsort(times.to_numpy(dtype="datetime64[ns]"), kind="stable")


def in_time_order(frame: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    """``frame``'s rows in ``order``, each with its place in ``frame`` (column PLACE)."""
    if PLACE in frame.columns:
        raise ValueError(
            f"the entity rows have a column named {PLACE!r}, which the build uses itself: rename it"
        )
    return frame.iloc[order].assign(**{PLACE: order}).reset_index(drop=True)


def restore(by_time: Path, out: Path, chunk_rows: int) -> None:
    """Write ``by_time``'s rows to ``out`` in their entity rows' order, without the PLACE column.

    DuckDB sorts (spilling beside ``out`` when the set outgrows memory); Arrow writes, in row groups
    of ``chunk_rows`` as the build writes in order, so a rebuild gives the same bytes.
    """
    schema = pq.read_schema(by_time)
    schema = schema.remove(schema.get_field_index(PLACE))
    spill = out.with_name(f"{out.name}.sort.tmp")
    con = duckdb.connect()
    try:
        lake.tune(con)  # no DuckDB progress bar on stdout
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET temp_directory = $d", {"d": str(spill)})
        reader = con.execute(
            f'SELECT * EXCLUDE ("{PLACE}") FROM read_parquet($p) ORDER BY "{PLACE}"',  # noqa: S608 (a constant)
            {"p": str(by_time)},
        ).to_arrow_reader(chunk_rows)
        with pq.ParquetWriter(out, schema) as writer:
            pending: list[pa.RecordBatch] = []
            held = 0
            for batch in reader:
                pending.append(batch)
                held += batch.num_rows
                while held >= chunk_rows:
                    table = pa.Table.from_batches(pending)
                    writer.write_table(table.slice(0, chunk_rows).cast(schema), row_group_size=chunk_rows)
                    rest = table.slice(chunk_rows)
                    pending, held = rest.to_batches(), rest.num_rows
            if held:
                writer.write_table(pa.Table.from_batches(pending).cast(schema), row_group_size=chunk_rows)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
