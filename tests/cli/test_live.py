"""The demo's live scoring lines: each product's score as it changes, and why one is not scored; a
stream that stops ends the step with its error."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from werkzeug.serving import make_server

from serving import create_app
from tests.cli.helpers import serving
from tests.conftest import free_port
from tickstore.errors import TickstoreError
from tickstore.settings import Settings


def test_live_scores_go_on_past_a_product_the_batch_could_not_score(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.live import _print_scores
    from tests.serving.conftest import register_model, write_online

    s = make_settings(serve_port=free_port())
    register_model(s, seed=1, threshold=0.5)
    write_online(s, "BTC-USD")
    app = create_app(s, watch_model=False)
    with serving(make_server("127.0.0.1", s.serve_port, app, threaded=True)):
        # NEW-USD has no features yet: the batch is a 200 with an error in its place (a KeyError
        # on its missing probability ended the demo's scoring)
        _print_scores(
            f"http://127.0.0.1:{s.serve_port}", ["NEW-USD", "BTC-USD"], seconds=2.5, running=lambda: True
        )
    out = " ".join(capsys.readouterr().err.split())
    assert "p: the model's probability of a volatility spike within 60 s; SPIKE: p at or above 0.5000" in out
    assert out.count("BTC-USD p=") == 1  # printed when it changes, not every second
    assert out.count("NEW-USD not scored: no online features for NEW-USD") == 1


def test_the_simulated_recording_of_the_live_step_is_kept_in_the_home(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a temporary folder of its own was never removed: 6 MB in /tmp a demo
    from cli.live import _source

    monkeypatch.chdir(tmp_path)  # no ../shared/data/coinbase beside it: the demo simulates
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    s = make_settings(data_dir=None)
    path = _source(s)
    assert path == s.run_dir / "live-simulated.ndjson" and path.stat().st_size > 0
    assert _source(s) == path and not list(temp.iterdir())  # written afresh in the same place


@pytest.mark.kafka
def test_a_live_step_whose_stream_stops_ends_with_the_streams_error(kafka_settings: Settings) -> None:
    # the stream's thread printed a traceback, the step waited out its seconds for scores that could
    # not come, and the demo exited 0
    from cli.live import live_scoring

    closed = f"127.0.0.1:{free_port()}"
    s = kafka_settings.model_copy(
        update={"online_store": "redis", "redis_url": closed, "serve_port": free_port()}
    )
    trained: Any = SimpleNamespace(champion="models:/tickstore-volatility@champion")  # what step 6 reports
    level = logging.getLogger("ingest.stream").level
    started = time.monotonic()
    with pytest.raises(TickstoreError) as raised:
        live_scoring(s, trained, seconds=60)
    said = str(raised.value)
    assert said.startswith(
        f"the live step's stream stopped: the Redis online store at {closed} does not answer"
    )
    assert time.monotonic() - started < 45  # not the step's 60 s
    # quietened for the step only: left at WARNING, the stream's INFO lines were lost to later tests
    assert logging.getLogger("ingest.stream").level == level != logging.WARNING


def test_the_commands_to_run_by_hand_name_the_settings_the_demo_was_given(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    # `TICKSTORE_ONLINE_STORE=redis make demo`: the printed commands, run without it in other terminals,
    # had a scorer read the SQLite store, empty, while the stream wrote to Redis
    from cli.live import CHAMPION, _by_hand

    s = make_settings(online_store="redis", data_dir=Path("recordings"))
    _by_hand(s, CHAMPION, Path("rec.ndjson"))
    said = capsys.readouterr().err
    given = next(line for line in said.splitlines() if "set as for this demo" in line)
    assert "TICKSTORE_HOME, TICKSTORE_TOPIC_RAW" in given and "TICKSTORE_ONLINE_STORE" in given
    assert "DATA_DIR" not in given  # the replay's file is named in its own line
    assert "tickstore ingest replay rec.ndjson --speed 1 --retime" in said
    _by_hand(Settings.model_construct(), CHAMPION, Path("rec.ndjson"))  # defaults only: nothing to carry
    assert "set as for this demo" not in capsys.readouterr().err
