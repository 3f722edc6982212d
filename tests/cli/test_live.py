"""The demo's live scoring lines: each product's score as it changes, and why one is not scored."""

from __future__ import annotations

from collections.abc import Callable

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
