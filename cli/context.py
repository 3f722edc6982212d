"""What every command shares: the stderr console and the settings the root group parsed."""

from __future__ import annotations

import click
from rich.console import Console

from tickstore.settings import Settings

console = Console(stderr=True)


def settings_of(ctx: click.Context) -> Settings:
    """The settings `tickstore` built from --home and TICKSTORE_* (set on the root group's context)."""
    return ctx.obj["settings"]  # type: ignore[no-any-return]
