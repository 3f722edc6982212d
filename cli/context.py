"""What every command shares: the stderr console and the settings the root group parsed."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from tickstore.settings import Settings

# In a pipe or a CI log rich would wrap at 80 columns, splitting the commands it prints for pasting
# (`mlflow ui --backend-store-uri ...`): there, lines are left whole and tables get 200 columns.
_TTY = sys.stderr.isatty()
console = Console(stderr=True, soft_wrap=not _TTY, width=None if _TTY else 200)


def settings_of(ctx: click.Context) -> Settings:
    """The settings `tickstore` built from --home and TICKSTORE_* (set on the root group's context)."""
    return ctx.obj["settings"]  # type: ignore[no-any-return]
