"""The serial line to the scanner (pyserial): open, read what has arrived, close.

Reads wait at most ``SLICE_S``, so the listening thread notices a close or a quiet line
quickly. Any failure of the port is ``PortGone``: the scanner was unplugged or died.
"""

from __future__ import annotations

import termios

import serial

SLICE_S = 0.05

# What a vanished port raises: pyserial's errors, plain OSError from the ioctl behind
# in_waiting, and termios.error (not an OSError) from a flush on a port that is gone.
_PORT_ERRORS = (serial.SerialException, OSError, termios.error)


class PortGone(Exception):
    """The port could not be opened or failed under us."""


class ScannerPort:
    def __init__(self, port: str, baudrate: int) -> None:
        self.port = port
        self.baudrate = baudrate
        self._serial: serial.Serial | None = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> None:
        if self._serial is not None:
            return
        try:
            line = serial.Serial(self.port, self.baudrate, bytesize=serial.EIGHTBITS,
                                 parity=serial.PARITY_NONE, stopbits=serial.STOPBITS_ONE,
                                 timeout=SLICE_S, exclusive=True)
        except (*_PORT_ERRORS, ValueError) as exc:
            raise PortGone(f"cannot open {self.port}: {exc}") from exc
        try:
            # What the scanner sent before anyone listened belongs to nobody.
            line.reset_input_buffer()
        except _PORT_ERRORS as exc:
            line.close()
            raise PortGone(f"{self.port} failed: {exc}") from exc
        self._serial = line

    def read(self) -> bytes:
        """What has arrived, waiting up to ``SLICE_S`` for the first byte; b"" if nothing."""
        line = self._serial
        if line is None:
            raise PortGone(f"{self.port} is not open")
        try:
            return line.read(line.in_waiting or 1)
        except _PORT_ERRORS as exc:
            self.close()
            raise PortGone(f"{self.port} failed: {exc}") from exc

    def close(self) -> None:
        line, self._serial = self._serial, None
        if line is not None:
            try:
                line.close()
            except _PORT_ERRORS:
                pass  # a port whose device vanished may fail to close; it is closed for us
