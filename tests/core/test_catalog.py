"""The lake's catalog file: emptied, removed or damaged while the lake's Parquet files are still there."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.helpers import tickstore
from tickstore import lake
from tickstore.settings import Settings


def _lake_with_ticks(s: Settings) -> list[Path]:
    """A lake holding 5,000 ticks in its own Parquet files (fewer DuckLake keeps in the catalog
    itself); returns them."""
    con = lake.connect(s)
    con.execute(
        "INSERT INTO ticks (product_id, event_time) SELECT 'A', now() - i * INTERVAL 1 SECOND FROM range(5000) t(i)"
    )
    con.close()
    files = sorted(s.lake_data.rglob("*.parquet"))
    assert files
    return files


@pytest.mark.parametrize("how", ["emptied", "removed"])
def test_no_new_lake_is_made_over_the_data_files_of_a_lost_catalog(
    make_settings: Callable[..., Settings], how: str
) -> None:
    # DuckLake made a new, empty lake there: the sink went on from its committed offsets, every
    # earlier tick in files no catalog named (until stop 57)
    s = make_settings()
    files = _lake_with_ticks(s)
    if how == "emptied":
        os.truncate(s.lake_catalog, 0)  # an interrupted copy, a full disk
    else:
        s.lake_catalog.unlink()
    for create in (True, False):
        with pytest.raises(lake.LakeError) as said:
            lake.connect(s, create=create)
        message = " ".join(str(said.value).split())
        state = "is empty (0 bytes)" if how == "emptied" else "is missing"
        assert (
            f"the lake's catalog {s.lake_catalog} {state}, while {s.lake_data} holds {len(files)} Parquet"
            in message
        )
        assert "put back a copy of catalog.sqlite from a backup" in message
        assert "set another TICKSTORE_SINK_GROUP to read it from its start" in message
    assert sorted(s.lake_data.rglob("*.parquet")) == files  # nothing made, nothing touched
    assert not s.lake_catalog.exists() or s.lake_catalog.stat().st_size == 0


def test_a_damaged_catalog_says_what_to_do_and_doing_it_works(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    _lake_with_ticks(s)
    backup = s.home / "catalog.backup"
    shutil.copy(s.lake_catalog, backup)
    os.truncate(s.lake_catalog, 4096)  # a copy cut short: SQLite's "database disk image is malformed"
    out = tickstore(s, "sql", "SELECT count(*) FROM ticks", check=False)
    err = " ".join(out.stderr.split())
    assert out.returncode == 1 and "Traceback" not in err, err
    assert "database disk image is malformed" in err, err
    assert (
        f"is damaged, the Parquet files themselves untouched: put back a copy of {s.lake_catalog.name}" in err
    )
    status = " ".join(tickstore(s, "status", check=False).stdout.split())
    assert "lake: unreadable: cannot attach the lake" in status, status
    shutil.copy(backup, s.lake_catalog)  # as it says
    assert "5000" in tickstore(s, "sql", "SELECT count(*) FROM ticks", "--format", "csv").stdout


def test_a_data_file_removed_by_hand_is_named_with_what_to_do_by_each_door(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    (gone,) = _lake_with_ticks(s)
    moved = s.home / "moved.parquet"
    gone.rename(moved)
    said = f"a data file of the lake is gone: {gone} (deleted or moved by hand?)"
    # each read of its ticks: an ad-hoc query, status, and a command through the CLI's own error
    # handling (train without a range, listing the lake's busiest stretches); until stop 57 DuckDB's
    # "Cannot open file" as a traceback from status, and elsewhere with "(a folder on the path is missing)"
    for args in (("sql", "SELECT avg(price) FROM ticks"), ("train",)):
        out = tickstore(s, *args, check=False)
        err = " ".join(out.stderr.split())
        assert out.returncode == 1 and said in err and "Traceback" not in err, err
        assert "put it back where it was" in err and "folder on the path" not in err, err
    status = " ".join(tickstore(s, "status", check=False).stdout.split())
    assert f"lake {s.lake_dir}: unreadable: {said}" in status, status
    moved.rename(gone)  # put back, as it says
    assert (
        "5000"
        in tickstore(s, "sql", "SELECT count(DISTINCT event_time) FROM ticks", "--format", "csv").stdout
    )
