"""Making a file's creation or rename survive a power cut: ``write_atomically`` replaces a file
so a reader sees the old one or the new one, never a part; ``fsync_dir`` makes a rename done
elsewhere durable."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int, *, uid: int = -1, gid: int = -1,
                     backup: bool = True) -> bool:
    """Replace ``path`` with ``data`` so that a reader (or a power cut) sees the old file or the
    new one, never a part. The previous content is kept as ``<name>.bak``. Returns False (and
    touches nothing) when the file already holds exactly ``data`` with this mode."""
    path = Path(path)
    with contextlib.suppress(OSError):
        info = path.stat()
        if stat.S_IMODE(info.st_mode) == mode and path.read_bytes() == data \
                and uid in (-1, info.st_uid) and gid in (-1, info.st_gid):
            return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)  # before the first byte: a key is never readable by others
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if backup and path.exists():
            _copy_atomically(path, path.with_name(path.name + ".bak"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return True


def _copy_atomically(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copy2(source, tmp)  # mode too: a key's backup stays 0600
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
