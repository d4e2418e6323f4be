"""The serial line to the SAM (pyserial): open, close, and one request/answer exchange.

Reads happen in short slices so a deadline or a cancel is noticed within ``SLICE_S``; frames
are cut out of the byte stream by ``protocol.FrameDecoder``, which skips any garbage.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import serial

from devices.ga467.protocol import FrameDecoder, FrameTimeout, LineNoise, ShortFrame

# A stop request or a deadline is noticed this quickly.
SLICE_S = 0.02
# After an exchange that ended early, bytes of its answer may still be on the way; this much
# silence means they have stopped.
_QUIET_S = 2 * SLICE_S
_DRAIN_MAX_S = 0.25


class LinkGone(Exception):
    """The port could not be opened or failed under us: the reader is unplugged or dead."""


class Interrupted(Exception):
    """The caller asked to stop (cancel or command deadline) in the middle of an exchange."""


class SerialLink:
    def __init__(self, port: str, baudrate: int, write_timeout_s: float = 1.0) -> None:
        self.port = port
        self.baudrate = baudrate
        self.write_timeout_s = write_timeout_s
        self._serial: serial.Serial | None = None
        self._decoder = FrameDecoder()
        self._dirty = False
        # Totals since construction, for read statistics (the caller takes differences).
        self.bytes_received = 0
        self.noise_bytes = 0

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> None:
        if self._serial is not None:
            return
        try:
            self._serial = serial.Serial(
                self.port, self.baudrate, bytesize=serial.EIGHTBITS, parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE, timeout=SLICE_S,
                write_timeout=self.write_timeout_s, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkGone(f"cannot open {self.port}: {exc}") from exc
        self._dirty = True  # whatever the device sent before we listened is stale

    def close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass  # closing a port whose device vanished may fail; it is closed for us

    def exchange(self, request: bytes, deadline: float,
                 stop: Callable[[], bool] = lambda: False) -> bytes:
        """Send ``request`` and return the payload of the next frame received.

        Raises ``protocol.FrameError`` subclasses for a bad or missing answer,
        ``Interrupted`` when ``stop()`` turns true, ``LinkGone`` when the port fails.
        """
        port = self._serial
        if port is None:
            raise LinkGone(f"{self.port} is not open")
        try:
            self._purge(port)
            port.write(request)
            payload = self._read_frame(port, deadline, stop)
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise LinkGone(f"{self.port} failed: {exc}") from exc
        except BaseException:
            self._dirty = True
            raise
        return payload

    def _purge(self, port: serial.Serial) -> None:
        if self._dirty:
            # Let the rest of an abandoned answer arrive and go, so it is not taken for the
            # answer to the next request.
            ends = time.monotonic() + _DRAIN_MAX_S
            quiet_since = time.monotonic()
            while time.monotonic() < ends and time.monotonic() - quiet_since < _QUIET_S:
                if port.read(port.in_waiting or 1):
                    quiet_since = time.monotonic()
            self._dirty = False
        port.reset_input_buffer()
        self._decoder.reset()

    def _read_frame(self, port: serial.Serial, deadline: float,
                    stop: Callable[[], bool]) -> bytes:
        decoder = self._decoder
        received = 0
        try:
            while True:
                payload = decoder.next_payload()
                if payload is not None:
                    return payload
                if stop():
                    raise Interrupted()
                if time.monotonic() >= deadline:
                    if decoder.pending:
                        raise ShortFrame(f"frame incomplete after {received} bytes")
                    if received:
                        raise LineNoise(f"{received} bytes without a frame")
                    raise FrameTimeout("no answer")
                chunk = port.read(port.in_waiting or 1)
                received += len(chunk)
                self.bytes_received += len(chunk)
                decoder.feed(chunk)
        finally:
            self.noise_bytes += decoder.discarded
