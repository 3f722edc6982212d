"""`tickstore models`: the logged models as a table to read, or CSV / JSON to parse."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.cli.helpers import tickstore
from tests.training.test_runs import log_run
from tickstore.settings import Settings
from training import tracking


def test_models_lists_what_train_logged_and_how_to_serve_it(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    empty = tickstore(s, "models")
    assert "no models yet" in empty.stderr and "`tickstore train` logs them" in empty.stderr
    experiment = tracking.setup(s)
    run = log_run(experiment, "logreg", "leaky", {"val_pr_auc": 0.923, "test_pr_auc": 0.991})
    table = " ".join(tickstore(s, "models").stdout.split())
    assert (
        f"│ leaky │ logreg │ 2025-12-06 06:15..08:30 │ 60 s │ 7 │ 0.923 │ 0.991 │ │ │ │ runs:/{run}/model │"
        in table
    )
    (row,) = [json.loads(line) for line in tickstore(s, "models", "--format", "json").stdout.splitlines()]
    assert row["uri"] == f"runs:/{run}/model" and row["test_pr_auc"] == 0.991 and row["champion"] is False
    assert row["start"] == "2025-12-06T06:15:00+00:00" and row["brier"] is None and row["horizon_s"] == 60.0
