"""Reading files that other people wrote into a shared directory, without trusting them.

Anyone who can write into the shared directory can put anything where a reader looks: a FIFO
named like a message (an ``open`` that never returns), a symbolic link to ``/dev/zero`` or to
the reader's own private files, a device, a directory, a file that keeps growing. So every
read here walks the path one folder at a time from a participant's folder (``O_NOFOLLOW``:
never through a link), checks what it found before opening it (``lstat``: a regular file, or a
real directory), opens it with ``O_NONBLOCK`` (a FIFO swapped in meanwhile cannot block) and
checks the opened descriptor again (``fstat``: the same regular file). Callers then read at
most the size they checked (:func:`copy_at_most`), so a file that grows afterwards is cut at
that size.

Ownership: where the system records who owns a file (``st_uid``), every folder and file under
a participant's folder must belong to the uid that owns that folder. A file planted there by
another account (a share where everyone may write everywhere) is refused, never read. The
check is only as good as the uids: on a sync client's folder (Dropbox, Drive for desktop)
every file belongs to the local user who runs it, so it never refuses and proves nothing; see
``docs/security.md``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


class UnsafeFile(Exception):
    """Something in a shared directory that must not be read; the text says what it is."""


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


class OwnedFolder:
    """An open folder under a participant's folder, every step of its path vetted; ``uid`` is that participant's."""

    def __init__(self, fd: int, uid: int, path: Path) -> None:
        self.fd = fd
        self.uid = uid
        self.path = path

    def names(self) -> list[str]:
        """The names in this folder (unsorted; nothing about them is vetted yet)."""
        return os.listdir(self.fd)

    def _vetted(self, name: str, *, directory: bool) -> os.stat_result:
        if "/" in name or name in ("", ".", ".."):
            raise UnsafeFile(f"{name!r} is not a plain name")
        found = os.stat(name, dir_fd=self.fd, follow_symlinks=False)  # FileNotFoundError: gone
        wanted = stat.S_ISDIR(found.st_mode) if directory else stat.S_ISREG(found.st_mode)
        if not wanted:
            raise UnsafeFile(f"{_kind(found.st_mode)}, not a {'folder' if directory else 'regular file'}")
        if found.st_uid != self.uid:
            raise UnsafeFile(
                f"owned by uid {found.st_uid}, not by uid {self.uid} that owns the participant's folder "
                "(someone else wrote it there)"
            )
        return found

    @contextmanager
    def folder(self, name: str) -> Iterator[OwnedFolder]:
        """The subfolder ``name``: a real folder (not a link) of the same owner."""
        before = self._vetted(name, directory=True)
        fd = _open(name, _DIR_FLAGS, self.fd)
        try:
            _same(before, os.fstat(fd))
            yield OwnedFolder(fd, self.uid, self.path / name)
        finally:
            os.close(fd)

    @contextmanager
    def open(self, name: str) -> Iterator[tuple[BinaryIO, int]]:
        """The regular file ``name`` of the same owner, opened for reading, and its size when opened."""
        before = self._vetted(name, directory=False)
        fd = _open(name, _FILE_FLAGS, self.fd)
        try:
            after = os.fstat(fd)
            _same(before, after)
            f = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f, after.st_size


def _open(name: str, flags: int, dir_fd: int) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: a link swapped in after the lstat; ENOTDIR: a file where a folder was
        raise UnsafeFile(f"cannot be opened safely ({exc.strerror})") from None


def _same(before: os.stat_result, after: os.stat_result) -> None:
    """The opened file is the one that was vetted (not swapped for another between the two)."""
    if (before.st_dev, before.st_ino) != (after.st_dev, after.st_ino) or stat.S_IFMT(before.st_mode) != stat.S_IFMT(
        after.st_mode
    ):
        raise UnsafeFile("was replaced while being opened")


@contextmanager
def participant_folder(root: Path, name: str) -> Iterator[OwnedFolder]:
    """A participant's folder ``root/name``: a real folder (not a link); its owner's uid is the one everything
    under it must have."""
    if "/" in name or name in ("", ".", ".."):
        raise UnsafeFile(f"{name!r} is not a plain name")
    root_fd = os.open(str(root), _DIR_FLAGS & ~_NOFOLLOW)  # the root is configuration: it may be a link
    try:
        before = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
        if not stat.S_ISDIR(before.st_mode):
            raise UnsafeFile(f"{_kind(before.st_mode)}, not a folder")
        fd = _open(name, _DIR_FLAGS, root_fd)
        try:
            _same(before, os.fstat(fd))
            yield OwnedFolder(fd, before.st_uid, root / name)
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)


@contextmanager
def owned_folder(root: Path, parts: Sequence[str]) -> Iterator[OwnedFolder]:
    """The folder ``root/parts[0]/.../parts[-1]``, each step vetted against the owner of ``parts[0]``."""
    with participant_folder(root, parts[0]) as folder:
        with _descend(folder, parts[1:]) as inner:
            yield inner


@contextmanager
def _descend(folder: OwnedFolder, parts: Sequence[str]) -> Iterator[OwnedFolder]:
    if not parts:
        yield folder
        return
    with folder.folder(parts[0]) as sub, _descend(sub, parts[1:]) as inner:
        yield inner


@contextmanager
def open_owned(root: Path, parts: Sequence[str]) -> Iterator[tuple[BinaryIO, int]]:
    """The regular file ``root/parts[0]/.../parts[-1]`` (every step vetted), open for reading, and its size."""
    with owned_folder(root, parts[:-1]) as folder, folder.open(parts[-1]) as opened:
        yield opened


def copy_at_most(source: BinaryIO, out: BinaryIO, size: int, chunk: int) -> int:
    """Copy up to ``size`` bytes (what was checked) from ``source`` into ``out``: bytes added after the check are
    never read. Returns the bytes copied (fewer if the file shrank)."""
    left = size
    while left > 0:
        data = source.read(min(chunk, left))
        if not data:
            break
        out.write(data)
        left -= len(data)
    return size - left
