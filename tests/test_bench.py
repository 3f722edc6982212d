"""The benchmarks of `make bench`, run small: each still runs to its figures (a refactor that broke
one went unseen until the next `make bench`), and the checks they print hold."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def bench(script: str, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    """``bench/<script>`` with ``args`` in a subprocess, as `make bench` runs it; its output."""
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@pytest.mark.slow
def test_offline_bench_runs_small_and_our_store_answers_as_feasts() -> None:
    out = bench(
        "offline.py",
        "--ticks",
        "30000",
        "--entities",
        "3000",
        "--peer-entities",
        "2000",
        "--peer-ticks",
        "3000",
    )
    for view in ("ticks_60s", "ticks_10s", "ticks_300s"):
        assert f"feature SQL {view}: 30,000 ticks in " in out
    assert "same rows: yes" in out  # the view called with a range, against a WHERE on it
    assert "point-in-time set, ours: 3,000 entity rows x 30,000 feature rows" in out
    assert "same answers (rows filled, sum of tick_count_60s): yes" in out
    assert "ratio: ours is " in out


@pytest.mark.slow
@pytest.mark.kafka
def test_ingest_and_dataset_benches_run_small() -> None:
    out = bench("ingest.py", "--ticks", "5000", "--batch-rows", "1000")
    assert "sink: 5,000 ticks in lake (5,000 new)" in out and "sustained throughput Kafka -> lake: " in out
    out = bench("dataset.py", "--ticks", "30000", "--entities", "3000")
    for order in ("in time order", "shuffled"):
        assert f"dataset build, 3,000 entity rows {order}: " in out
    assert "same features (sum of tick_count_60s): yes" in out  # the order of the rows changes nothing


@pytest.mark.slow
def test_train_bench_runs_small() -> None:
    out = bench("train.py", "--hours", "1")
    assert "total: " in out and "champion: " in out
    for model in ("zscore", "logreg", "xgboost"):
        assert f"  {model}" in out


@pytest.mark.slow
@pytest.mark.kafka
def test_serve_bench_runs_small_without_errors_on_either_scorer(tmp_path: Path) -> None:
    import re

    # a home of its own, and no runtime folder: gunicorn under `feast serve` made ~/.gunicorn/ for its
    # control socket, left in the user's home by every run
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"} | {"HOME": str(tmp_path)}
    out = bench("serve.py", "--rates", "20", "--seconds", "2", "--freshness-seconds", "3", env=env)
    assert not (tmp_path / ".gunicorn").exists()
    assert re.search(r"produce -> online p50 \d+ ms, p99 \d+ ms", out)
    rows = re.findall(r"^ +20 +[\d.]+ms .* (\d+)/(\d+) ", out, re.M)
    assert len(rows) == 2, out  # quiet, then while the stream writes
    assert all(errors == ("0", "0") for errors in rows), out  # tickstore's and feast serve's requests


@pytest.mark.slow
def test_compaction_bench_runs_small_and_keeps_every_tick() -> None:
    out = bench("compaction.py", "--days", "0.02")
    for policy in ("tiered", "merge-all"):
        assert f"{policy}: 17,400 ticks in 29 batches" in out
    assert out.count("every tick in the lake: yes") == 2
    assert "ratio (merge-all / tiered): written " in out


@pytest.mark.parametrize(
    "script", ["compaction.py", "dataset.py", "ingest.py", "offline.py", "serve.py", "train.py"]
)
def test_a_bench_s_help_says_what_it_measures_and_what_each_option_does(script: str) -> None:
    out = bench(script, "--help", timeout=120)
    doc = ast.get_docstring(ast.parse((REPO / "bench" / script).read_text())) or ""
    # the whole first paragraph: the description was its first line, cut mid-sentence
    assert " ".join(doc.split("\n\n")[0].split()) in " ".join(out.split())
    options = out.split("options:\n", 1)[1].splitlines()
    for i, line in enumerate(options):
        if line.startswith("  -"):  # an option; its help beside it, or on the lines below, indented
            below = options[i + 1] if i + 1 < len(options) else ""
            assert "  " in line.strip() or below.startswith(" " * 5), f"{script}: {line.strip()} says nothing"
    assert "--step" not in out and "--kw" not in out  # how a bench runs its own child processes
