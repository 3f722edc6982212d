"""Imports point one way: cli -> stages (ingest, training, serving) -> tickstore_feast -> tickstore."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

OURS = {"tickstore", "tickstore_feast", "ingest", "training", "serving", "cli"}
# What each package may import of ours. The stages import none of one another: serving loads the
# model from MLflow and features from the online store, not through training or ingest.
ALLOWED = {
    "tickstore": {"tickstore"},
    "tickstore_feast": {"tickstore", "tickstore_feast"},
    "ingest": {"tickstore", "tickstore_feast", "ingest"},
    "training": {"tickstore", "tickstore_feast", "training"},
    "serving": {"tickstore", "tickstore_feast", "serving"},
    "cli": OURS,
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of our packages that ``path`` imports, anywhere in it (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & OURS
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no modules found under {package}/"
    wrong = {
        str(f.relative_to(REPO)): sorted(bad)
        for f in files
        if (bad := imported_packages(f) - ALLOWED[package])
    }
    assert not wrong, f"imports against the layering: {wrong}"


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from training.train import train\n    import ingest.replay\n")
    assert imported_packages(module) == {"training", "ingest"}
