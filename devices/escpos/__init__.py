"""The 80 mm receipt printer over a serial line, speaking ESC/POS (python-escpos)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def _capabilities_cache() -> None:
    """python-escpos caches its printer database as a pickle in a fresh ``mkdtemp()`` on every
    import (one left-over directory per kiosk start) unless told where. One private directory
    per user instead; never one that someone else could have put a pickle into."""
    if "ESCPOS_CAPABILITIES_PICKLE_DIR" in os.environ:
        return
    cache = Path(tempfile.gettempdir()) / f"zizhu-escpos-{os.getuid()}"
    try:
        cache.mkdir(mode=0o700, exist_ok=True)
        info = cache.lstat()
    except OSError:
        return
    private = stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() \
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if private:
        os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(cache)


_capabilities_cache()
