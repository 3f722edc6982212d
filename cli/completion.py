"""Tab completion for the `tickstore sql` shell: dot commands, SQL keywords, the lake's tables and
the feature views of sql/, and their columns; after a dot command, what it takes."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

from cli.session import Session

# those taking an argument with the space before it (readline adds none after a completion)
DOT_COMMANDS = (".tables", ".schema ", ".format ", ".limit ", ".param ", ".plot ", ".read ", ".help", ".quit")
KEYWORDS = (
    "SELECT", "FROM", "WHERE", "GROUP BY", "GROUP BY ALL", "ORDER BY", "LIMIT", "HAVING", "DISTINCT",
    "COUNT", "AS", "AND", "OR", "NOT", "BETWEEN", "INTERVAL", "ASOF JOIN", "JOIN", "LEFT JOIN", "ON",
    "USING", "WITH", "OVER", "PARTITION BY", "DESC", "ASC", "NULL", "IS", "IN", "LIKE", "CASE", "WHEN",
    "THEN", "ELSE", "END", "CAST", "DESCRIBE", "SUMMARIZE", "EXPLAIN", "now()",
)  # fmt: skip


class Completer:
    """readline's completer over a fixed set of words: those starting with what was typed (case
    aside), in the typed case for keywords, as named for tables and columns. A dot command's argument
    completes from what that command takes: files for `.read` and `.plot`, formats for `.format`,
    tables and views for `.schema`."""

    def __init__(self, names: Iterable[str], relations: Iterable[str] = ()) -> None:
        self.names = sorted(set(names))
        self.relations = sorted(set(relations))
        self.matches: list[str] = []

    def candidates(self, text: str, before: str = "") -> list[str]:
        """Every word ``text`` can complete to, ``before`` being the line up to it."""
        command = before.split()[0] if before.strip().startswith(".") else ""
        if command in (".read", ".plot"):
            return paths(text)
        if command == ".format":
            from cli.shell import FORMATS

            return [f for f in FORMATS if f.startswith(text.lower())]
        if command == ".schema":
            return [r for r in self.relations if r.lower().startswith(text.lower())]
        if text.startswith("."):
            return [c for c in DOT_COMMANDS if c.startswith(text)]
        low = text.lower()
        keywords = [k if text[:1].isupper() or not text else k.lower() for k in KEYWORDS]
        return [w for w in [*self.names, *keywords] if w.lower().startswith(low)]

    def complete(self, text: str, state: int) -> str | None:
        """readline's protocol: the ``state``-th completion of ``text``, None past the last."""
        if state == 0:
            import readline

            self.matches = self.candidates(text, readline.get_line_buffer()[: readline.get_begidx()])
        return self.matches[state] if state < len(self.matches) else None


def paths(text: str) -> list[str]:
    """The files and folders (these with a `/`, to go on into) whose path starts with ``text``, a
    leading `~` kept as typed."""
    home = os.path.expanduser("~")
    tilde = text.startswith("~") and home != "~"
    found = []
    for match in sorted(glob.glob(glob.escape(os.path.expanduser(text)) + "*")):
        shown = "~" + match[len(home) :] if tilde and match.startswith(home) else match
        found.append(shown + "/" if os.path.isdir(match) else shown)
    return found


def names(session: Session) -> list[str]:
    """The tables and feature views a statement can name, and their columns (the views' columns from
    their files, so nothing is computed to list them)."""
    from tickstore import feature_sql

    tables = session.tables()
    found = [*tables, *session.views]
    for table in tables:  # names SHOW TABLES gave, quoted as identifiers
        quoted = table.replace('"', '""')
        found += [row[0] for row in session.con.execute(f'DESCRIBE "{quoted}"').fetchall()]  # noqa: S608
    for path in session.views.values():
        found += feature_sql.column_comments(path.read_text())
    return found


def install(session: Session) -> None:
    """Tab completes in the shell (where readline is there: not on Windows)."""
    try:
        import readline
    except ImportError:
        return
    completer = Completer(names(session), [*session.tables(), *session.views])
    readline.set_completer(completer.complete)
    # words run through dots (`.schema`) and underscores; `(` and `,` end them
    readline.set_completer_delims(" \t\n(),;=<>'\"")
    # macOS's Python links libedit, which spells the binding its own way
    libedit = "libedit" in (readline.__doc__ or "")
    readline.parse_and_bind("bind ^I rl_complete" if libedit else "tab: complete")
