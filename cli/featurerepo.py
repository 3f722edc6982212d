"""`tickstore feast ...`: Feast's own CLI on feature_repo/, with the data under TICKSTORE_HOME."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.context import settings_of
from tickstore.settings import Settings


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,  # `tickstore feast --help` is Feast's help
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def feast(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Run Feast's CLI on feature_repo/ with the data paths under TICKSTORE_HOME.

    \b
      tickstore feast apply
      tickstore feast materialize-incremental 2025-12-06T12:00:00

    The plain `feast` CLI in feature_repo/ reads feature_store.yaml's paths (../.tickstore) and
    never TICKSTORE_HOME or TICKSTORE_ONLINE_STORE; this runs it on a copy of the yaml re-rooted the
    way every tickstore command reads it.
    """
    from feast.cli.cli import cli

    from tickstore.errors import TickstoreError
    from tickstore_feast.repo import FEATURE_REPO, repo_error, write_cli_config

    settings = settings_of(ctx)
    config = write_cli_config(settings)
    registered = _registered_views(settings) if _subcommand(args) == "plan" else None
    # Feast's CLI exits with its own status (SystemExit), which becomes ours
    try:
        cli.main(
            ["--chdir", str(FEATURE_REPO), "--feature-store-yaml", str(config), *args],
            prog_name="tickstore feast",
        )
    except SystemExit as done:
        if registered is not None and not done.code:
            _echo_source_diffs(settings, registered)
        raise
    except Exception as exc:  # a mistake in feature_repo/'s own files: say where, not Feast's frames
        where = repo_error(exc)
        if where is None:
            raise
        raise TickstoreError(where) from exc


# Feast's own options that take a value (the word after them is not the subcommand)
_VALUED = {"-c", "--chdir", "--log-level", "-f", "--feature-store-yaml"}


def _subcommand(args: tuple[str, ...]) -> str | None:
    """The Feast subcommand ``args`` name (`plan` in `--log-level INFO plan`), if any."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _registered_views(settings: Settings) -> list[Any]:
    """The feature views in the registry under ``settings.home`` as they are before a plan (none
    while there is no registry)."""
    from tickstore_feast.repo import feature_store, registry_path

    if not Path(registry_path(settings)).exists():
        return []
    return list(feature_store(settings, apply=False).list_feature_views())


def _echo_source_diffs(settings: Settings, registered: list[Any]) -> None:
    """After Feast's plan: what changed in each registered view's SQL, line by line, and which views
    it listed only for its record of their materialization."""
    from feast import FeatureView
    from feast.inference import update_feature_views_with_inferred_features_and_entities
    from feast.infra.provider import get_provider

    from tickstore_feast.plan import record_only, source_diffs
    from tickstore_feast.repo import feature_store, repo_modules, repo_objects

    defined = [o for o in repo_objects(repo_modules()) if isinstance(o, FeatureView)]
    store = feature_store(settings, apply=False)
    # the entity columns Feast's plan infers before comparing
    update_feature_views_with_inferred_features_and_entities(
        get_provider(store.config), defined, store.list_entities(), store.config
    )
    untouched = record_only(registered, defined)
    if untouched:
        click.echo(
            f"\n{', '.join(untouched)}: listed as updated for Feast's record of their materialized "
            "intervals only; their definitions are unchanged (and apply keeps the record)"
        )
    diffs = source_diffs(registered, defined)
    if not diffs:
        return
    click.echo("\nChanged feature SQL (registered -> feature_repo/):")
    for diff, same in diffs:
        click.echo(
            "(comments, layout or options only: models trained on the registered SQL still score)"
            if same
            else "(a new definition: the scorer refuses a model trained on the registered SQL until one "
            "trained on this is the champion)"
        )
        for line in diff.splitlines():
            colour = (
                {"+": "green", "-": "red", "@": "cyan"}.get(line[:1])
                if line[:3] not in ("+++", "---")
                else None
            )
            click.echo(click.style(line, fg=colour, bold=line[:3] in ("+++", "---")))
