"""The demo's live scoring lines: each product's score as it changes, and why one is not scored."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from serving import create_app
from tests.cli.helpers import serving
from tests.conftest import free_port
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
        _print_scores(f"http://127.0.0.1:{s.serve_port}", ["NEW-USD", "BTC-USD"], seconds=2.5)
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
