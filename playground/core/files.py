"""Writing files and folders so that a reader never sees half of one: the one way the app writes what it keeps.

Everything is written under a hidden temporary name in the destination's own folder (so the final rename is one
atomic step on one file system), then renamed into place; a failure, a full disk or a kill part way leaves at most
a hidden temporary behind, never a half-written file under the real name.

- :func:`staged_file` / :func:`write_atomic`: a file whose new version replaces the old one whole.
- :func:`staged_folder`: a folder (an adapter, a checkpoint, a dataset) that replaces the old one whole.
- :func:`publish_unique`: a new file given the first of several names that is free, never replacing a file saved
  meanwhile under the same name (uploads).

The standard library has the pieces (``tempfile``, ``os.replace``) but no helper that stages and renames; the
packages we depend on keep theirs private, so these few lines are ours.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def staged_file(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``final`` for the block to write; when the block succeeds, the file
    replaces ``final`` in one rename; when it fails, the temporary is deleted and ``final`` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
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


@contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """Yield a fresh, empty temporary folder beside ``final`` for the block to fill; when the block succeeds, it
    takes ``final``'s place (an old ``final`` is removed first: a reader in between sees no folder, never a mix of
    old and new files); when it fails, the temporary folder is deleted and ``final`` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield temporary
        if final.exists() or final.is_symlink():
            _remove(final)
        os.replace(temporary, final)
    except BaseException:
        _remove(temporary)
        raise


def publish_unique(folder: Path, write: Callable[[Path], object], names: Iterable[str]) -> Path | None:
    """Write a new file into ``folder`` under the first of ``names`` that no file holds, and return its path (None
    when every name is taken: nothing is left behind). ``write(path)`` fills a temporary file first; a hard link
    then gives it its name, which never replaces a file saved meanwhile under the same name (on a file system
    without hard links a rename is the fallback)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix=".new.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
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
