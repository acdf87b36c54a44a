"""Writing files and folders so that a reader never sees half of one: the one way the app writes what it keeps.

Everything is written under a hidden temporary name in the destination's own folder (so the final rename is one
atomic step on one file system), then renamed into place; a failure, a full disk or a kill part way leaves at most
a hidden temporary behind, never a half-written file under the real name.

- :func:`staged_file` / :func:`write_atomic`: a file whose new version replaces the old one whole.
- :func:`staged_folder`: a folder (an adapter, a checkpoint, a dataset) that replaces the old one whole.
- :func:`publish_unique`: a new file given the first of several names that is free, never replacing a file saved
  meanwhile under the same name (uploads; :func:`numbered_names` gives the names, :func:`listed_files` lists them).

Files and folders get the permissions the umask gives an ordinary ``open`` or ``mkdir``.

The standard library has the pieces (``os.open``, ``os.replace``) but no helper that stages and renames; the
packages we depend on keep theirs private, so these few lines are ours.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _hidden_beside(final: Path) -> Path:
    """A fresh hidden name in ``final``'s folder: ``.<name>.<random>.tmp``."""
    return final.parent / f".{final.name}.{uuid.uuid4().hex[:12]}.tmp"


def _new_file(final: Path) -> Path:
    """Create an empty temporary file beside ``final``. ``os.open`` with mode 0o666 lets the umask decide the
    permissions, as an ordinary ``open`` would (``tempfile.mkstemp`` makes owner-only files, and the rename would
    keep that mode)."""
    while True:
        temporary = _hidden_beside(final)
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return temporary
        except FileExistsError:  # a random name taken: try another
            continue


@contextmanager
def staged_file(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``final`` for the block to write; when the block succeeds, the file
    replaces ``final`` in one rename; when it fails, the temporary is deleted and ``final`` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = _new_file(final)
    try:
        yield temporary
        os.replace(temporary, final)
    except BaseException:
        _remove(temporary)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8): readers see the old text or the new, never half."""
    with staged_file(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def remove_leftovers(final: Path) -> list[Path]:
    """Delete the temporaries that killed writers of ``final`` left beside it (``.<name>.<hex>.tmp``); returns them.
    Only for a caller that knows no other writer of ``final`` is running (it holds a lock, or is the only writer)."""
    final = Path(final)
    stale = sorted(final.parent.glob(f".{glob.escape(final.name)}.*.tmp"))
    for path in stale:
        _remove(path)
    return stale


@contextmanager
def staged_folder(final: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh, empty temporary folder beside ``final`` for the block to fill; when the block succeeds, it is
    renamed to ``final``; when it fails, it is deleted and ``final`` is untouched.

    ``replace``: an old ``final`` is first renamed aside, then deleted once the new one is in place (a reader in
    between finds no folder, never a mix of old and new files; a crash between the two renames leaves the old one
    under a hidden name). Without ``replace``, a ``final`` that exists — or that another process publishes
    meanwhile — raises :class:`FileExistsError` and is left as it is.

    With ``replace``, temporaries that a killed writer of the same ``final`` left behind are deleted first: a
    replaced folder has one writer at a time (a run's adapter and checkpoints are written by its main process
    only). Without it several processes may race to publish the same ``final`` (the first wins), so the others'
    temporaries are left alone."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if replace:
        remove_leftovers(final)
    temporary = _hidden_beside(final)
    temporary.mkdir()  # mode 0o777 less the umask, as an ordinary folder
    try:
        yield temporary
        if not replace:
            if final.exists() or final.is_symlink():
                raise FileExistsError(errno.EEXIST, "already exists", str(final))
            try:
                os.rename(temporary, final)
            except OSError as error:  # published meanwhile: rename() refuses a folder that isn't empty
                if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise FileExistsError(errno.EEXIST, "already exists", str(final)) from error
                raise
            return
        old = None
        if final.exists() or final.is_symlink():
            old = _hidden_beside(final)
            os.rename(final, old)
        os.rename(temporary, final)
        if old is not None:
            _remove(old)
    except BaseException:
        _remove(temporary)
        raise


def numbered_names(stem: str, suffix: str, taken: Iterable[str] = ()) -> Iterator[str]:
    """``stem.suffix``, ``stem-2.suffix``, ``stem-3.suffix`` … (up to 9,999), skipping the stems in ``taken``: the
    names an upload may take, first free first (see :func:`publish_unique`)."""
    taken = set(taken)
    for number in range(1, 10_000):
        candidate = stem if number == 1 else f"{stem}-{number}"
        if candidate not in taken:
            yield f"{candidate}{suffix}"


def listed_files(folder: Path | None, suffixes: Iterable[str]) -> list[Path]:
    """The files of ``folder`` with one of ``suffixes`` (any case), by name: hidden and temporary files left out,
    and links too (a link could point anywhere: only files really in the folder)."""
    if folder is None or not folder.is_dir():
        return []
    suffixes = {s.lower() for s in suffixes}
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.is_symlink() and not p.name.startswith(".") and p.suffix.lower() in suffixes)


def publish_unique(folder: Path, write: Callable[[Path], object], names: Iterable[str]) -> Path | None:
    """Write a new file into ``folder`` under the first of ``names`` that no file holds, and return its path (None
    when every name is taken: nothing is left behind). ``write(path)`` fills a temporary file first; a hard link
    then gives it its name, which never replaces a file saved meanwhile under the same name (on a file system
    without hard links a rename is the fallback)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    temporary = _new_file(folder / ".new")
    try:
        write(temporary)
        for candidate in names:
            final = folder / candidate
            if final.exists():
                continue
            try:
                os.link(temporary, final)
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links
                os.replace(temporary, final)
            return final
        return None
    finally:
        temporary.unlink(missing_ok=True)


def write_failure(error: OSError, place: str) -> str:
    """Why writing under ``place`` ("the datasets folder") failed, in words for a message: a full disk (or a used-up
    quota) says so, since freeing space is the fix and permissions are not the problem; anything else says the
    place isn't writable, with the system's reason."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full: free some space and try again"
    return f"{place} isn't writable ({error.strerror or error})"
