"""Bash tab completion of `tickstore` that completes inside words bash splits at `:` and `=`.

Bash cuts the command line into words at each character of `COMP_WORDBREAKS` (`:` and `=` among them),
and click's completion script passes those words on: `--features ticks_60s:ret_s` reached the command
as the three words `ticks_60s`, `:` and `ret_s`, and nothing was offered. This script passes the line
itself (up to the cursor) and those characters; the command completes the whole argument and sends
back what goes after its last such character, the text bash (readline) replaces.
"""

from __future__ import annotations

import os
from typing import ClassVar

from click.shell_completion import BashComplete, CompletionItem, add_completion_class, split_arg_string

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


class WholeWordBashComplete(BashComplete):
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


def install() -> None:
    """Use this completion for bash (click picks the class by the shell's name)."""
    add_completion_class(WholeWordBashComplete, "bash")
