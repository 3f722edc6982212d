"""`tickstore feast ...`: Feast's own CLI on feature_repo/, with the data under TICKSTORE_HOME."""

from __future__ import annotations

import click

from cli.context import settings_of


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
    # Feast's CLI exits with its own status (SystemExit), which becomes ours
    try:
        cli.main(
            ["--chdir", str(FEATURE_REPO), "--feature-store-yaml", str(config), *args],
            prog_name="tickstore feast",
        )
    except Exception as exc:  # a mistake in feature_repo/'s own files: say where, not Feast's frames
        where = repo_error(exc)
        if where is None:
            raise
        raise TickstoreError(where) from exc
