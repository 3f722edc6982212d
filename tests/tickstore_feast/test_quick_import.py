"""Feast without typeguard's import-time instrumentation, except where users apply definitions."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

CHECKED = """
import sys
from click.testing import CliRunner
from cli.main import main
CliRunner().invoke(main, [sys.argv[1], "--help"])
from feast import Entity
try:
    Entity(name="product", join_keys="product_id")  # a str where Feast wants a list
except Exception as exc:
    print(type(exc).__name__)
"""


@pytest.mark.parametrize(
    ("command", "caught_by"),
    [
        # Feast's own checks: the mistake is named when it is made, where definitions are applied
        ("feast", "TypeCheckError"),
        # skipped (Feast's own validation still refuses it, later)
        ("status", "ValueError"),
    ],
)
def test_feast_type_checks_stay_only_where_users_apply_definitions(command: str, caught_by: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", CHECKED, command], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.stdout.strip() == caught_by, run.stderr


def test_the_plugin_package_imports_no_feast_until_its_classes_are_asked_for() -> None:
    code = (
        "import sys, tickstore_feast.quick_import; print('feast' in sys.modules); "
        "from tickstore_feast import DuckDBSource; print('feast' in sys.modules, DuckDBSource.__name__)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["False", "True", "DuckDBSource"], run.stderr
