"""Every `tickstore` command the README and the --help texts show parses: options exist, values convert."""

from __future__ import annotations

import re
import shlex
import warnings

import click
import pytest

from cli.main import main
from tests.conftest import REPO


def every_command(command: click.Command) -> list[click.Command]:
    subs = command.commands.values() if isinstance(command, click.Group) else []
    return [command, *(c for sub in subs for c in every_command(sub))]


def shown_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    texts = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    texts += [command.help or "" for command in every_command(main)]
    # a line that ends in a backslash goes on in the next one, as in a shell
    lines = [line.strip() for text in texts for line in re.sub(r"\\\n\s*", "", text).splitlines()]
    commands = []
    for line in lines:
        for part in line.split(" #")[0].split(" & "):  # `tickstore stream & tickstore serve`: two
            part = part.strip().rstrip(" &")
            if part.startswith("tickstore ") and " | " not in part:  # `broker status | stop`: shorthand
                commands.append(part)
    return list(dict.fromkeys(commands))  # each once, in order of appearance


def parse(args: list[str]) -> None:
    """Resolve ``args`` down to the leaf command and parse its options, without running anything."""
    command: click.Command = main
    parent = None
    while True:
        ctx = command.make_context(
            command.name or "tickstore", list(args), parent=parent, resilient_parsing=False
        )
        if not isinstance(command, click.Group):
            return
        with warnings.catch_warnings():  # Click 8.2 deprecates protected_args; 9 folds it into args
            warnings.simplefilter("ignore", DeprecationWarning)
            rest = [*ctx.protected_args, *ctx.args]
        _, sub, args = command.resolve_command(ctx, rest)
        assert sub is not None, rest
        command, parent = sub, ctx


def test_the_readme_shows_commands() -> None:
    commands = shown_commands()
    assert len(commands) > 20
    assert any(c.startswith("tickstore train --start 2025-12-06T06:15 ") for c in commands)  # from --help


@pytest.mark.parametrize("line", shown_commands())
def test_shown_command_parses(line: str) -> None:
    try:
        parse(shlex.split(line)[1:])
    except click.BadParameter as exc:
        # example files (rec.ndjson.gz, rows.csv) are the reader's own, not in the repo
        message = exc.format_message()
        if "does not exist" not in message and "No such file or directory" not in message:
            raise
