"""`tickstore dataset verify` (cli/dataset.py): a set rebuilt at its snapshot, and what differs where it is not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from cli.main import main
from tests.cli.helpers import env_for
from tests.tickstore_feast.conftest import load, tick_rows
from tests.training.helpers import seeded
from tickstore.settings import Settings


def test_verify_says_whether_a_set_is_reproduced_and_exits_1_where_not(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = seeded(make_settings)
    out = tmp_path / "train.parquet"
    grid = ["--every", "5", "--start", "2026-01-01T00:00:00", "--end", "2026-01-01T00:02:00"]
    run = CliRunner().invoke(main, ["dataset", "build", *grid, "--out", str(out)], env=env_for(s))
    assert run.exit_code == 0, run.output
    built = json.loads(out.with_suffix(".manifest.json").read_text())["snapshot"]
    load(s, tick_rows([("BTC-USD", 0.35 + i, 500.0) for i in range(50)]))  # a newer snapshot
    run = CliRunner().invoke(main, ["dataset", "verify", str(out)], env=env_for(s))
    text = " ".join(run.output.split())
    assert run.exit_code == 0, run.output
    assert f"{out}: 48 rows x 27 features (feature service volatility_model), built " in text
    assert f"reproduced: rebuilt at lake snapshot {built} in" in text and "byte for byte the same" in text
    assert "note:" not in text  # the manifest records the file's SHA-256

    table = pq.read_table(out)
    at = table.column_names.index("tick_count_300s")
    changed = pa.array([n + 1 if n else n for n in table.column(at).to_pylist()], table.field(at).type)
    pq.write_table(table.set_column(at, table.field(at), changed), out)  # a column changed since
    run = CliRunner().invoke(main, ["dataset", "verify", str(out)], env=env_for(s))
    text = " ".join(run.output.split())
    assert run.exit_code == 1, run.output
    assert (
        f"not reproduced: {out} is not the file the build wrote (its SHA-256 is not the manifest's): "
        "changed since it was built. Rebuilt from its rows, the set comes out as the build wrote it: the "
        "change is this file's. Where it differs from the rebuild:"
    ) in text
    # the first row that differs, by its key
    assert (
        "tick_count_300s: 48 of 48 rows differ, first row 1 (BTC-USD at 2026-01-01 00:00:00+00:00): 2 in the file, 1 rebuilt"
        in text
    )
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    del manifest["sha256"]  # as a set built before the manifest recorded it
    out.with_suffix(".manifest.json").write_text(json.dumps(manifest))
    run = CliRunner().invoke(main, ["dataset", "verify", str(out)], env=env_for(s))
    text = " ".join(run.output.split())
    assert run.exit_code == 1 and f"not reproduced: rebuilt at lake snapshot {built}, it differs:" in text
    assert "note: the manifest records no SHA-256 of the file" in text
    pq.write_table(table.slice(1), out)  # a row gone: the rebuild would make just the rows left
    run = CliRunner().invoke(main, ["dataset", "verify", str(out)], env=env_for(s))
    assert run.exit_code == 1 and "the manifest says 48 rows were built; the file has 47" in run.output

    run = CliRunner().invoke(main, ["dataset", "verify", str(tmp_path / "none.parquet")], env=env_for(s))
    assert run.exit_code == 2 and "does not exist" in run.output
