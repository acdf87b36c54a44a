"""Back up the ratings database while the app runs: SQLite's online backup API into one self-contained file.

Copying ``ratings.sqlite3`` with ``cp`` while raters vote can catch the file half-way through a write, and misses the
votes still in its write-ahead log (``ratings.sqlite3-wal``). :meth:`sqlite3.Connection.backup` copies the database
as one consistent snapshot instead — every vote committed before the copy began, none half-written — while the app
keeps taking votes (in WAL mode a reader never blocks the writer). The copy is written under a temporary name,
switched to a plain rollback journal (so it is one file, with no ``-wal`` beside it), checked with
``PRAGMA integrity_check``, and only then renamed into place.

From the command line, beside the running app::

    python -m playground.ratings.backup DEST [--data-dir DIR]

DEST is a folder (the copy is named ``ratings-YYYYMMDD-HHMMSS.sqlite3`` in it) or a new file's path. To restore,
stop the app and put the copy in place of ``DATA_DIR/ratings.sqlite3`` (removing any ``-wal`` / ``-shm`` files of the
old one).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from playground.core.files import staged_file
from playground.core.settings import DATA_DIR_ENV, Settings, default_data_dir
from playground.ratings.store import BUSY_TIMEOUT_MS


class BackupError(ValueError):
    """The backup can't be made; nothing was written, and the message says why."""


@dataclass(frozen=True)
class BackupResult:
    """Where the copy is, and what it holds."""

    path: Path
    comparisons: int
    votes: int
    seconds: float


def destination(dest: Path, stamp: str | None = None) -> Path:
    """The copy's path: inside ``dest`` when it is a folder (named by the time, UTC), else ``dest`` itself, which
    must not exist yet (a backup never replaces a file) and whose folder must."""
    dest = Path(dest).expanduser()
    if dest.is_dir():
        return dest / f"ratings-{stamp or time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.sqlite3"
    if dest.exists():
        raise BackupError(f"{dest} already exists: give a new file name, or a folder to put the copy in.")
    if not dest.parent.is_dir():
        raise BackupError(f"The folder {dest.parent} doesn't exist: create it first, or give another destination.")
    return dest


def backup(database: Path, dest: Path) -> BackupResult:
    """Copy the live ratings ``database`` to ``dest`` (see :func:`destination`) with SQLite's online backup API;
    returns where the copy is and how many comparisons and votes it holds. Safe while the app writes: the copy is
    the database as it was when the backup began. Raises :class:`BackupError` with nothing written when the database
    is missing, the destination is taken, or the copy fails its integrity check."""
    database = Path(database).expanduser()
    if not database.is_file():
        raise BackupError(f"There is no ratings database at {database}: check --data-dir (the app's data dir).")
    final = destination(dest)
    if final.exists():
        raise BackupError(f"{final} already exists: wait a second and back up again, or name the file.")
    started = time.monotonic()
    with staged_file(final) as temporary:
        with closing(sqlite3.connect(database, timeout=BUSY_TIMEOUT_MS / 1000)) as source, \
                closing(sqlite3.connect(temporary)) as copy:
            source.backup(copy)  # all pages in one step: one read transaction, so one consistent snapshot
            copy.execute("PRAGMA journal_mode=DELETE")  # one file: no -wal beside the copy
            check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"The copy failed SQLite's integrity check ({check}); nothing was kept.")
            comparisons, votes = copy.execute("SELECT COUNT(*), COUNT(winner) FROM comparisons").fetchone()
    return BackupResult(final, comparisons, votes, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playground.ratings.backup",
                                     description="Back up the ratings database, safely while the app runs.")
    parser.add_argument("dest", type=Path, help="a folder to put the copy in, or the new copy's file name")
    parser.add_argument("--data-dir", default=None,
                        help=f"the app's data dir (default: ${DATA_DIR_ENV} or {default_data_dir()})")
    args = parser.parse_args(argv)
    settings = Settings(data_dir=args.data_dir) if args.data_dir else Settings()
    try:
        result = backup(settings.ratings_db, args.dest)
    except (BackupError, sqlite3.Error, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{result.path}: {result.votes} votes in {result.comparisons} comparisons, integrity ok "
          f"({result.seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
