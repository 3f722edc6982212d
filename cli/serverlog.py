"""The scoring server's log: gunicorn's start-up line completed, and one copy of what every worker says."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

# Workers saying the same thing this close together are saying it about one event (each notices a
# change at its own model-reload tick: within TICKSTORE_SERVE_RELOAD_S of the others)
SAID_WINDOW_S = 60.0


class NameReusePortListeners(logging.Filter):
    """Fill in the address of gunicorn's "Listening at:" line when each worker opens its own socket.

    With ``reuse_port`` the master opens no socket, so gunicorn logs "Listening at:  (pid)".
    """

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Listening at: %s (%s)" and isinstance(record.args, tuple) and not record.args[0]:
            record.args = (f"{self.address} (a socket per worker)", *record.args[1:])
        return True


class SaidOnce(logging.Filter):
    """Let one of the identical lines the server's processes log close together through.

    Each gunicorn worker loads the model and watches the registry itself, so each said the same
    thing: with four workers, a missing model's five-line warning was printed four times at start,
    and "loaded ..." four times at each promotion. The processes share no memory, so a line's first
    sayer marks it with a file in ``folder`` (one per distinct line, named by its hash), and the line
    said again within ``window_s`` of the mark is dropped. Said later (a problem mended, then back),
    it is said again, and marked anew.
    """

    def __init__(self, folder: Path, window_s: float = SAID_WINDOW_S) -> None:
        super().__init__()
        self.folder = folder
        self.window_s = window_s

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:  # --verbose's many debug lines: a file each is not worth it
            return True
        said = f"{record.levelno} {record.name} {record.getMessage()}"
        mark = self.folder / hashlib.sha1(said.encode("utf-8", "replace")).hexdigest()
        try:
            os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return True  # the first to say it
        except FileExistsError:
            pass
        except OSError:
            return True  # a folder that can't be written to: better twice than never
        try:
            if time.time() - mark.stat().st_mtime < self.window_s:
                return False
            os.utime(mark)
        except OSError:
            pass
        return True
