"""The error type whose message tells a user what to do: the CLI prints it without a traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class TickstoreError(RuntimeError):
    """A failure a user can act on (no lake, no broker, ...); its message says how."""


def shown(name: object) -> str:
    """``name`` as a message prints it: quoted when it is empty or has spaces around it, which would
    not show (a product id `BTC-USD ` from a CSV file, a column ` event_timestamp`)."""
    text = str(name)
    return repr(text) if not text or text != text.strip() else text


# What the machine refused, whatever the data: by errno for Python's own file calls, by message for
# an engine's (DuckDB's IO errors carry the operating system's text, its SQLite catalog SQLite's)
_TROUBLE = (
    (
        "the disk is full: free some space there",
        {errno.ENOSPC, errno.EDQUOT},
        ("No space left", "disk is full", "quota exceeded"),
    ),
    ("the file system is read-only", {errno.EROFS}, ("Read-only file system", "readonly database")),
    (
        "this user may not write there",
        {errno.EACCES, errno.EPERM},
        ("Permission denied", "Operation not permitted"),
    ),
    ("a part of the path is not a directory", {errno.ENOTDIR}, ("Not a directory",)),
    # a folder deleted under a running process (one that is there but takes no files: above)
    ("a folder on the path is missing", {errno.ENOENT}, ("No such file or directory",)),
    # a path naming the wrong kind of thing: by errno only (an engine's "File exists" may mean else)
    ("that is a folder: name a file", {errno.EISDIR}, ("Is a directory",)),
    ("a file is where a folder was to be made: name a folder", {errno.EEXIST}, ()),
    ("the disk failed a read or write", {errno.EIO}, ("disk I/O error", "Input/output error")),
    # a file system's largest file, or the shell's `ulimit -f`
    ("the file outgrew what this file system or `ulimit -f` allows", {errno.EFBIG}, ("File too large",)),
)


def storage_trouble(exc: BaseException) -> str | None:
    """A hint saying what the machine refused when ``exc`` is a full disk, a read-only or forbidden
    path, or None when it is anything else. An OSError is judged by its errno, anything else by its
    text: callers pass only errors whose text can't quote the data (an engine's IO error, not a
    conversion error naming a bad value)."""
    code = exc.errno if isinstance(exc, OSError) else None
    text = str(exc)
    if code == errno.ENOENT and isinstance(exc, OSError) and exc.filename:
        # the folder is there, yet no file can be made in it: a kernel's folder (/proc, /sys)
        if Path(os.fsdecode(exc.filename)).parent.is_dir():
            return "its folder is there but takes no new files: a system folder such as /proc?"
    for hint, codes, phrases in _TROUBLE:
        if code in codes or (code is None and any(p.lower() in text.lower() for p in phrases)):
            return hint
    return None
