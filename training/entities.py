"""Entity rows from a file: CSV or Parquet, a product and a time a row, times read as UTC.

What `tickstore dataset build --entities FILE` reads; every row it can't use is refused naming its line.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from tickstore import lake
from tickstore.errors import shown
from training.parquet import read_parquet

# the names a Parquet file goes by: the build writes only these, and reads none of them as CSV
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def file_entities(path: Path, data: bytes | None = None) -> pd.DataFrame:
    """Entity rows from CSV or Parquet with product_id and event_timestamp columns.

    Parquet is told by its magic bytes, not the suffix (`.pq`, `.parq`); anything else is read as CSV,
    compressed by its suffix (`.csv.gz`), unless its suffix says Parquet. Given ``data``, that is the
    file's content (piped in) and ``path`` only names it; gzip is then told by its magic bytes.
    """
    source: Path | io.BytesIO = path if data is None else io.BytesIO(data)
    if data is None:
        with path.open("rb") as f:
            head = f.read(4)
    else:
        head = data[:4]
    is_parquet = head == b"PAR1"
    compression = "gzip" if data is not None and head[:2] == b"\x1f\x8b" else "infer"
    if not is_parquet and path.suffix.lower() in PARQUET_SUFFIXES:
        # read as CSV it only failed later, naming a column "Unnamed: 0" it "has"
        raise ValueError(
            f"{path} is not Parquet (a Parquet file starts with the bytes PAR1): another format under that name?"
        )
    try:
        if is_parquet:
            frame = read_parquet(path if data is None else data)
        else:
            frame = _csv(source, compression, path)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{path} is neither Parquet nor readable CSV: {exc}") from exc
    missing = {"product_id", "event_timestamp"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"{path} lacks column(s) {', '.join(sorted(missing))} (it has {', '.join(map(shown, frame.columns))})"
            + _renames(missing, list(frame.columns))
        )
    if frame.empty:
        raise ValueError(f"{path} holds no entity rows")
    # where a row is in the file: CSV lines count the header; Parquet rows count from 1
    where = "line" if not is_parquet else "row"
    first = 2 if not is_parquet else 1
    for column in ("product_id", "event_timestamp"):
        empty = np.flatnonzero(frame[column].isna() | (frame[column].astype(str).str.strip() == ""))
        if len(empty):
            at = ", ".join(str(i + first) for i in empty[:5]) + (" ..." if len(empty) > 5 else "")
            raise ValueError(f"{path}: {len(empty):,} entity row(s) with no {column} ({where} {at})")
    if pd.api.types.is_numeric_dtype(frame["event_timestamp"]):
        # epoch numbers: seconds, milliseconds or more are guesses, and a wrong guess moves every row
        raise ValueError(
            f"{path}: event_timestamp holds numbers ({frame['event_timestamp'].iloc[0]} in {where} {first}), "
            "not times: write ISO 8601 times (2025-12-06T07:00:00Z) or a Parquet timestamp column; epoch "
            "seconds convert with DuckDB's to_timestamp(x) or pandas' pd.to_datetime(x, unit='s', utc=True)"
        )
    times = utc_times(frame["event_timestamp"])
    bad = np.flatnonzero(times.isna())
    if len(bad):
        at = ", ".join(str(i + first) for i in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise ValueError(
            f"{path}: event_timestamp must be ISO 8601 times of the years 1678-2261 (UTC unless an offset is given): "
            f"{frame['event_timestamp'].iloc[bad[0]]!r} is not ({where} {at})"
        )
    frame["event_timestamp"] = times
    frame["product_id"] = frame["product_id"].astype(str)
    return frame


# what an entity file's columns are often called instead, for the rename a message suggests
LIKELY = {
    "product_id": ("product", "productid", "symbol", "ticker", "instrument", "pair"),
    "event_timestamp": ("timestamp", "ts", "time", "event_time", "event_ts", "datetime"),
}


def _renames(missing: set[str], columns: list[object]) -> str:
    """ ": rename ts to event_timestamp" for each missing column one of ``columns`` looks like (another
    case, spaces around it, a usual other name); "" where none or several do."""
    renames = []
    for wanted in sorted(missing):
        alike = [c for c in columns if isinstance(c, str) and c.strip().lower() in (wanted, *LIKELY[wanted])]
        if len(alike) == 1:
            renames.append(f"{shown(alike[0])} to {wanted}")
    return f": rename {' and '.join(renames)}" if renames else ""


def _csv(source: Path | io.BytesIO, compression: str, path: Path) -> pd.DataFrame:
    """A CSV file's rows, every field under the header's names (fields split at commas, or at tabs,
    semicolons or bars where the header holds no comma but one of those).

    When each line has one field more than the header, pandas takes the first column for an index and
    shifts every name by one: a trailing comma on each line (as some tools write them) read the times
    as products and gave a traceback. Trailing empty fields are dropped; a value there is refused,
    naming its line. (Lines longer than the first data line are pandas' own error, naming theirs.)
    """

    def read(**options: object) -> pd.DataFrame:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        # spaces after the commas (`BTC-USD, 2025-12-06T07:00`) are layout: read as part of the
        # fields, they named a column " event_timestamp" and every product " BTC-USD" (no tick's)
        return pd.read_csv(
            source,
            dtype={"product_id": str},
            compression=compression,  # type: ignore[arg-type]
            skipinitialspace=True,
            **options,  # type: ignore[arg-type]
        )

    frame = read()
    header = str(frame.columns[0]) if len(frame.columns) == 1 else ""
    sep = next((sep for sep in ("\t", ";", "|") if sep in header), None)
    if sep is not None:
        # a TSV, or Excel's CSV where a comma is the decimal mark: its header read as one column
        # "product_id;event_timestamp", said missing both
        frame = read(sep=sep)
    if isinstance(frame.index, pd.RangeIndex):
        return frame
    extra = frame[frame.columns[-1]]  # the last field of each line, under the last name
    filled = np.flatnonzero(extra.notna().to_numpy())
    if len(filled):
        raise ValueError(
            f"{path}: line {filled[0] + 2} has {len(frame.columns) + 1} fields where the header names "
            f"{len(frame.columns)}: name the extra column, or quote a value that holds a comma"
        )
    with warnings.catch_warnings():  # pandas warns of the dropped (empty) fields
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        return read(index_col=False, **({} if sep is None else {"sep": sep}))


def utc_times(values: pd.Series) -> pd.Series:
    """ISO 8601 times as UTC timestamps (NaT where a value is not one, or is one pandas can't hold: a
    year before 1678 or after 2261): an offset is honoured, a time without one is UTC, as everywhere in
    tickstore.

    Not pandas' ISO 8601 parser: in a column mixing the two it gave a time without an offset the offset
    of an earlier row (`2025-12-06T07:00:00` after a `+01:00` row came out 06:00 UTC), and the features
    were read an hour off. DuckDB's cast reads each value on its own.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):  # typed (Parquet): a naive time is UTC
        return pd.to_datetime(values, utc=True)
    con = duckdb.connect()
    try:
        lake.tune(con)  # no DuckDB progress bar on stdout
        con.execute("SET TimeZone = 'UTC'")
        con.register("entity_times", pd.DataFrame({"t": values.astype(str).str.strip()}))
        # outside pandas' nanosecond range, .df() failed with "Out of bounds nanosecond timestamp",
        # naming neither the file nor the line
        parsed = con.execute(
            "SELECT CASE WHEN t >= TIMESTAMPTZ '1678-01-01 00:00:00+00' AND t < TIMESTAMPTZ '2262-01-01 00:00:00+00' "
            "THEN t END AS t FROM (SELECT TRY_CAST(t AS TIMESTAMPTZ) AS t FROM entity_times)"
        ).df()["t"]
    finally:
        con.close()
    result = pd.to_datetime(parsed, utc=True).astype("datetime64[ns, UTC]")
    result.index = values.index
    return result.rename(values.name)
