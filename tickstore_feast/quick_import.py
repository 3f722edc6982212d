"""Feast imported in about a second instead of four: without typeguard re-compiling its classes."""

from __future__ import annotations

import sys
from typing import Any


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """typeguard's ``@typechecked`` (bare or called with options) that leaves its target as it is."""
    return target if target is not None else _unchecked


def skip_feast_type_checks() -> None:
    """Make Feast's ``@typechecked`` decorators no-ops; effective only before Feast is first imported.

    typeguard 4 instruments each decorated function by parsing and compiling its whole module again:
    2,136 compiles in `import feast`, most of its time (measured in decisions.md). The checks catch
    wrongly typed arguments to Feast's classes, which matter where users write definitions: Feast's
    own CLI and `tickstore feast` keep them; the commands that only run the tested feature repo skip
    them.
    """
    if "feast" in sys.modules:
        return
    import typeguard

    typeguard.typechecked = _unchecked  # type: ignore[assignment]
