"""tickstore's own options (`--home`, `-v`) read after the command too, for parsing and Tab alike.

click knows an option only where it is declared: `tickstore status --home DIR` answered "No such
option '--home'", and Tab after it offered nothing. The root group's words are rearranged instead of
the options being declared on each of the commands (docs/decisions.md). Also whether the words
ask for help only, which no check of the data directory should stand in front of.
"""

from __future__ import annotations

from collections.abc import Mapping

import click

FLAGS = ("-v", "--verbose")


def command_at(args: list[str]) -> int:
    """Where the command's name stands in ``args`` (past the options before it; ``--home`` takes a
    value), or ``len(args)`` when there is none yet."""
    at = 0
    while at < len(args) and args[at].startswith("-"):
        at += 2 if args[at] == "--home" else 1
    return min(at, len(args))


def flags_for(command: str) -> tuple[str, ...]:
    """The root flags read after ``command``: none after `feast`, whose words go to Feast's CLI (its
    `materialize -v` names views; it has no --home)."""
    return () if command == "feast" else FLAGS


def hoisted(args: list[str]) -> list[str]:
    """``args`` with tickstore's own options moved before the command when given after it:
    `tickstore status --home DIR -v` read as `tickstore --home DIR -v status`."""
    at = command_at(args)
    if at >= len(args):
        return args
    flags = flags_for(args[at])
    root: list[str] = []
    rest: list[str] = []
    i = at + 1
    while i < len(args):
        word = args[i]
        if word == "--":  # what follows is the command's own, whatever it looks like
            rest += args[i:]
            break
        if word == "--home" and i + 1 < len(args):
            root += args[i : i + 2]
            i += 2
            continue
        (root if word in flags or word.startswith("--home=") else rest).append(word)
        i += 1
    return [*args[:at], *root, args[at], *rest]


def after_command(args: list[str]) -> list[str] | None:
    """The words given after the command where root options are still read (up to a `--`), or None
    before the command or past a `--`."""
    at = command_at(args)
    if at >= len(args) or "--" in args[at + 1 :]:
        return None
    return args[at + 1 :]


def asks_help(args: list[str], commands: Mapping[str, click.Command]) -> bool:
    """Whether ``args`` ask only for help: no command, `-h` / `--help` after it (before any `--`), or
    a group of ``commands`` named with nothing after it (it prints its help)."""
    at = command_at(args)
    if at >= len(args):
        return True
    rest = args[at + 1 :]
    if "--" in rest:
        rest = rest[: rest.index("--")]
    if any(word in ("-h", "--help") for word in rest):
        return True
    return not rest and isinstance(commands.get(args[at]), click.Group)
