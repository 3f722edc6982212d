"""constraints.txt pins everything tickstore installs, and the environment under test runs those pins."""

from __future__ import annotations

import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO


def locked() -> dict[str, str]:
    """constraints.txt as {canonical name: version}."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def installed_closure() -> set[str]:
    """Canonical names of every distribution tickstore with its dev extra needs on this platform.

    Walked from the installed metadata, markers evaluated here, so a requirement of another platform
    (or of an extra nobody asked for) is left out.
    """
    names: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [("tickstore", frozenset({"dev"}))]
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        names.add(canonicalize_name(name))
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return names - {"tickstore"}


def test_pyproject_pins_agree_with_constraints() -> None:
    """Each direct dependency is pinned exactly, to the version constraints.txt holds."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = locked()
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(text)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{text}: pin it exactly"
        assert pins.get(canonicalize_name(req.name)) == spec.version, (
            f"{req.name} is {spec.version} in pyproject.toml but {pins.get(canonicalize_name(req.name))} in "
            "constraints.txt: run make lock"
        )


def test_environment_runs_every_locked_version() -> None:
    """Everything installed for tickstore is in constraints.txt, at the version installed.

    Fails on a dependency that brought a package the lock does not name (pyproject.toml changed
    without `make lock`) and on a .venv built before constraints.txt changed (`make venv` rebuilds it).
    """
    pins = locked()
    needed = installed_closure()
    assert len(needed) > 100  # the walk reached the transitive dependencies, not just the direct ones
    unpinned = sorted(needed - pins.keys())
    assert not unpinned, f"installed but not in constraints.txt: {unpinned}: run make lock"
    drifted = {n: (metadata.version(n), pins[n]) for n in needed if metadata.version(n) != pins[n]}
    assert not drifted, f"installed versions differ from constraints.txt (installed, locked): {drifted}"
