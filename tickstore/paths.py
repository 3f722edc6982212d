"""Where the folders users edit live: `sql/` and `feature_repo/`, at the top of tickstore's source tree."""

from __future__ import annotations

from pathlib import Path

from tickstore.errors import TickstoreError

SOURCE_TREE = Path(__file__).resolve().parent.parent
SQL_DIR = SOURCE_TREE / "sql"  # the feature SQL, one view a file
FEATURE_REPO = SOURCE_TREE / "feature_repo"  # the Feast definitions and feature_store.yaml


def missing() -> list[Path]:
    """Those of the two folders that are not there: tickstore installed from a wheel (or `pip install .`),
    which copies the packages only."""
    return [p for p in (SQL_DIR, FEATURE_REPO) if not p.is_dir()]


def require() -> None:
    """Raise, saying what to do, unless both folders are there."""
    if gone := missing():
        raise TickstoreError(
            f"{' and '.join(map(str, gone))} not found beside tickstore's code: tickstore runs from its "
            "source tree, whose sql/ (the feature SQL) and feature_repo/ (the Feast definitions) are yours "
            "to edit, and this copy was installed without them (`pip install .` or a wheel). Clone the "
            "repository and install it editable there: `make venv` (or `pip install -e .`)."
        )


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, None while there is none: another pair once it was
    removed and made again, which a process holding the old one open does not see."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino
