"""Making a file's creation or rename survive a power cut: the data is fsync'd by whoever
writes it; the directory entry needs its own fsync, which is this."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
