"""`tickstore demo` as a user runs it (`make demo`): recordings or the simulator, refusals, `kill`."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.helpers import env_for, tickstore
from tests.conftest import free_port
from tickstore.settings import Settings


def test_demo_help_mentions_recordings(make_settings: Callable[..., Settings]) -> None:
    assert "replay recorded ticks" in tickstore(make_settings(), "demo", "--help").stdout


@pytest.mark.kafka
@pytest.mark.slow
def test_demo_without_recordings_falls_back_to_the_simulator(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    s = make_settings(broker_port=free_port())
    env = env_for(s)
    env.pop("TICKSTORE_DATA_DIR", None)
    elsewhere = tmp_path / "clone"  # no ../shared/data/coinbase next to it
    elsewhere.mkdir()
    temp = tmp_path / "tmp"  # what the demo leaves in the machine's temporary folder: nothing
    temp.mkdir()
    env["TMPDIR"] = str(temp)
    result = tickstore(s, "demo", "--simulate-ticks", "3000", env=env, cwd=elsewhere)
    assert "simulate" in result.stderr and "3,000 new ticks" in result.stderr
    assert "BTC-USD" in result.stdout and "broker stopped" in result.stderr
    plotted = s.home / "plots" / "ticks_60s.png"  # an hour of features, drawn
    assert (
        f"of ret_std_60s, spread_bps_mean_60s, tick_count_60s against event_time: {plotted}" in result.stderr
    )
    assert plotted.read_bytes()[:4] == b"\x89PNG"
    assert not (s.run_dir / "broker.pid").exists()
    assert not list(temp.iterdir())


def test_a_data_dir_without_recordings_is_refused_before_anything_starts(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # an empty TICKSTORE_DATA_DIR replayed nothing and the demo ended after the lake's queries, exit 0;
    # a missing one printed a traceback
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, what in ((empty, "holds no recordings"), (tmp_path / "missing", "does not exist")):
        s = make_settings(data_dir=folder, broker_port=free_port())
        out = tickstore(s, "demo", check=False)
        err = " ".join(out.stderr.split())
        assert out.returncode == 1 and "Traceback" not in err, err
        assert f"TICKSTORE_DATA_DIR={folder} {what}" in err and "point it at recordings" in err, err
        assert not s.lake_dir.exists() and not (s.run_dir / "broker.pid").exists()


def test_a_redis_online_store_that_does_not_answer_is_said_before_anything_starts(
    make_settings: Callable[..., Settings],
) -> None:
    # found by the stream of the last step, a minute in: a thread's traceback, the live step waited
    # out, exit code 0
    s = make_settings(broker_port=free_port())
    closed = f"127.0.0.1:{free_port()}"
    env = env_for(s) | {"TICKSTORE_ONLINE_STORE": "redis", "TICKSTORE_REDIS_URL": closed}
    out = tickstore(s, "demo", check=False, env=env)
    err = " ".join(out.stderr.split())
    assert out.returncode == 1 and "Traceback" not in err, err
    assert f"the Redis online store at {closed} does not answer" in err, err
    assert "`tickstore demo --live-seconds 0` skips that step" in err, err
    assert not s.lake_dir.exists() and not (s.run_dir / "broker.pid").exists()


@pytest.mark.kafka
def test_a_demo_whose_every_message_is_rejected_stops_saying_why(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / "bad.ndjson").write_text('{"type": "ticker", "price": "abc"}\n{"nope": 1}\n')
    s = make_settings(data_dir=recordings, broker_port=free_port())
    out = tickstore(s, "demo", check=False)
    err = " ".join(out.stderr.split())
    assert out.returncode == 1 and "Traceback" not in err, err
    assert (
        "the lake holds no ticks, so the demo stops before the features: the sink read 2 messages and rejected 2"
        in err
    )
    assert "broker stopped" in err and not (s.run_dir / "broker.pid").exists()


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("sig", "step", "code", "said"),
    [
        (signal.SIGTERM, "2. simulate", 143, "terminated (SIGTERM)"),
        (signal.SIGINT, "sink: consuming", 1, "Aborted!"),
    ],
)
def test_a_demo_stopped_part_way_stops_there_and_stops_the_broker_it_started(  # noqa: PLR0913
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    sig: signal.Signals,
    step: str,
    code: int,
    said: str,
) -> None:
    # until stop 57 SIGTERM ended the demo at once, leaving its broker running (and, in the live
    # step, its scorer on the port); a Ctrl-C in step 3, once the sink's own handler had it, ended
    # the sink, and the demo went on
    s = make_settings(broker_port=free_port())
    env = env_for(s)
    env.pop("TICKSTORE_DATA_DIR", None)
    elsewhere = tmp_path / "clone"  # no recordings beside it: the demo simulates
    elsewhere.mkdir()
    # SIGINT as a terminal gives it, whatever this test's parent set (CI's background job: ignored)
    as_foreground = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    proc = subprocess.Popen(
        [sys.executable, "-c", as_foreground + "from cli.main import main; main()", "demo", "--simulate-ticks", "1000000"],
        env=env, cwd=elsewhere, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if step in line:
                break
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        err = "".join(seen) + err
        assert proc.returncode == code, (out, err)
        assert "broker stopped" in err and said in err and "Traceback" not in err, err
        assert "4. the lake" not in err, err
        assert not (s.run_dir / "broker.pid").exists()
    finally:
        proc.kill()
        tickstore(s, "broker", "stop", check=False)
