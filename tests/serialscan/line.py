"""A pty pair standing in for a USB-serial QR scanner: the driver opens the slave through a
stable path (a symlink), the test writes what the scanner would send to the master, and
``unplug``/``replug`` make the port vanish and come back the way /dev/ttyACM0 does."""

from __future__ import annotations

import os
import time
import tty
from pathlib import Path


class ScannerLine:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "ttyQR"
        self._fds: tuple[int, int] | None = None
        self.replug()

    def replug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        # Holding the slave open keeps the line up before the driver opens its side.
        self._fds = (master, slave)
        tmp = self.path.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        os.replace(tmp, self.path)

    def send(self, data: bytes, pieces: int = 1, pause_s: float = 0.0) -> None:
        """Write ``data`` as the scanner would, in ``pieces`` writes ``pause_s`` apart."""
        assert self._fds is not None, "unplugged"
        size = max(1, -(-len(data) // pieces))
        for at in range(0, len(data), size):
            os.write(self._fds[0], data[at:at + size])
            if pause_s:
                time.sleep(pause_s)

    def unplug(self) -> None:
        if self._fds is not None:
            for fd in self._fds:
                os.close(fd)
            self._fds = None
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        self.unplug()
