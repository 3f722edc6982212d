"""Bash tab completion of `tickstore` that completes inside words bash splits at `:` and `=`.

Bash cuts the command line into words at each character of `COMP_WORDBREAKS` (`:` and `=` among them),
and click's completion script passes those words on: `--features ticks_60s:ret_s` reached the command
as the three words `ticks_60s`, `:` and `ret_s`, and nothing was offered. This script passes the line
itself (up to the cursor) and those characters; the command completes the whole argument and sends
back what goes after its last such character, the text bash (readline) replaces.

In every shell (bash, zsh, fish) tickstore's own options also complete after the command, where the
root group reads them (`cli/root_options.py`).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import click
from click.shell_completion import (
    BashComplete,
    CompletionItem,
    FishComplete,
    ShellComplete,
    ZshComplete,
    add_completion_class,
    split_arg_string,
)

from cli import root_options

# click's own script, with the line (to the cursor) and the characters bash breaks words at passed too
SOURCE = """\
%(complete_func)s() {
    local IFS=$'\\n'
    local response

    response=$(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD \
COMP_LINE="${COMP_LINE:0:COMP_POINT}" COMP_WORDBREAKS="$COMP_WORDBREAKS" \
%(complete_var)s=bash_complete $1)

    for completion in $response; do
        IFS=',' read type value <<< "$completion"

        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
        elif [[ $type == 'plain' ]]; then
            COMPREPLY+=($value)
        fi
    done

    return 0
}

%(complete_func)s_setup() {
    complete -o nosort -F %(complete_func)s %(prog_name)s
}

%(complete_func)s_setup;
"""


class RootOptionsAnywhere(ShellComplete):
    """click's completion, with tickstore's own options completed after the command too, where the
    root group reads them: `tickstore status --home /tm<Tab>` offered nothing (the command has no
    --home), nor did `--h<Tab>` offer `--home`."""

    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem[Any]]:
        """What ``incomplete`` can be, given the complete ``args`` before it."""
        after = root_options.after_command(args)
        if after is None:
            return super().get_completions(args, incomplete)
        if after[-1:] == ["--home"]:
            return self._home(incomplete)
        if incomplete.startswith("--home="):
            return self._home(incomplete.partition("=")[2])
        found = super().get_completions(args, incomplete)
        if incomplete.startswith("-") and "=" not in incomplete:
            command = args[root_options.command_at(args)]
            found += self._root_names(args, incomplete, command, {item.value for item in found})
        return found

    def _home(self, incomplete: str) -> list[CompletionItem[Any]]:
        """The root --home's own completion of a path."""
        ctx = click.Context(self.cli, info_name=self.prog_name, resilient_parsing=True)
        return self._param("home").shell_complete(ctx, incomplete)

    def _root_names(
        self, args: list[str], incomplete: str, command: str, offered: set[str]
    ) -> list[CompletionItem[Any]]:
        """The root options' names starting with ``incomplete`` that are read after ``command`` and
        not given yet (as click leaves out a command's options already given)."""
        given = {word.partition("=")[0] for word in args}
        out = []
        for name, readable in (("home", ("--home",)), ("verbose", root_options.flags_for(command))):
            param = self._param(name)
            if given & {*param.opts} or not readable:
                continue
            for opt in param.opts:
                if opt in readable and opt.startswith(incomplete) and opt not in offered:
                    out.append(CompletionItem(opt, help=getattr(param, "help", None)))
        return out

    def _param(self, name: str) -> click.Parameter:
        """The root group's option called ``name``."""
        return next(p for p in self.cli.params if p.name == name)


class WholeWordBashComplete(RootOptionsAnywhere, BashComplete):
    """click's bash completion, given the command line rather than bash's words."""

    source_template: ClassVar[str] = SOURCE

    def get_completion_args(self) -> tuple[list[str], str]:
        """The arguments before the one being completed, and that one as typed so far."""
        line = os.environ.get("COMP_LINE")
        if line is None:  # a script sourced from an earlier tickstore: bash's words, as click reads them
            return super().get_completion_args()
        words = split_arg_string(line)
        if not words or line[-1:].isspace():
            return words[1:], ""
        return words[1:-1], words[-1]

    def complete(self) -> str:
        """Completions of the argument, each less the part of it before the word bash replaces."""
        args, incomplete = self.get_completion_args()
        # click completes what follows `--option=` on its own
        typed = (
            incomplete.partition("=")[2] if incomplete.startswith("-") and "=" in incomplete else incomplete
        )
        # readline replaces only the text after the argument's last word-break character: what comes
        # before it must not be sent again (bash's `COMP_WORDBREAKS`, where a user may have taken `:` out)
        breaks = set(os.environ.get("COMP_WORDBREAKS", "")) - set(" \t\n")
        cut = max((i + 1 for i, c in enumerate(typed) if c in breaks), default=0)
        out = []
        for item in self.get_completions(args, incomplete):
            if item.type == "plain" and cut:
                if not item.value.startswith(typed[:cut]):
                    continue
                item = CompletionItem(item.value[cut:], type=item.type, help=item.help)
            out.append(self.format_completion(item))
        return "\n".join(out)


class RootOptionsZshComplete(RootOptionsAnywhere, ZshComplete):
    """click's zsh completion, with the root options after the command."""


class RootOptionsFishComplete(RootOptionsAnywhere, FishComplete):
    """click's fish completion, with the root options after the command."""


def install() -> None:
    """Use these completions (click picks the class by the shell's name)."""
    add_completion_class(WholeWordBashComplete, "bash")
    add_completion_class(RootOptionsZshComplete, "zsh")
    add_completion_class(RootOptionsFishComplete, "fish")
