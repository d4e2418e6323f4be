"""A hardware QR scanner in serial mode (driver ``"serial"``): USB-serial (CDC ACM) or RS-232
scanners that send each code's text and a suffix.

Settings (config ``[devices.barcode]``):

``port``                  the serial port (default /dev/ttyACM0; prefer a /dev/serial/by-id
                          link, stable across replugs)
``baudrate``              default 9600 (8N1)
``suffix``                what ends a code: "\\r" (default), "\\n", "\\r\\n", "\\t", or the
                          names CR, LF, CRLF, TAB
``max_chars``             longest code accepted, at most ``devices.barcode.MAX_PAYLOAD_CHARS``
``reconnect_interval_s``  how often a missing port is tried again (default 1)
``gap_s``                 silence after which an unterminated fragment is dropped as line
                          noise (default 0.5; a scanner sends a code in one burst)

One thread owns the port: it opens it (and reopens it after an unplug: ``noDevice`` and
``Detached``, then ``online`` and ``Attached``), cuts the byte stream into codes
(``framing``) and stamps each with the time its suffix arrived. A ``read`` command returns
the first code completed after the command was asked for; codes scanned while nobody was reading
are dropped (they belong to someone else).

``read`` outcomes:

==========================================  ==============  ============  =================
what happened                               completion      error code    event
==========================================  ==============  ============  =================
a code                                      success                       DataRead (text)
bytes neither UTF-8 nor GBK, or noise       (keeps waiting)               InvalidMedia
code longer than ``max_chars``              invalidData     invalidMedia  Error
nothing scanned before the deadline         timeOut         timeOut
cancelled                                   canceled        stopped
port gone (before or during the read)       deviceNotReady  noDevice      Error
scanner closed                              deviceNotReady  offline       Error
==========================================  ==============  ============  =================

These are what the simulated reader answers, so a flow cannot tell the two apart.
``status().detail``: ``port``, ``baudrate``, ``codes`` (codes received), ``staleCodes``
(dropped because nobody was reading), ``invalid`` (undecodable or oversized),
``noiseBytes`` (bytes of unterminated fragments dropped).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any

from devices.barcode import MAX_PAYLOAD_CHARS, BarcodeReader
from devices.contract import (
    Capabilities,
    CommandContext,
    CommandFailed,
    Completion,
    DeviceState,
    DeviceStatus,
    EventKind,
    PendingCommand,
    Severity,
)
from devices.serialscan.framing import Code, CodeFramer, Oversized, Scanned
from devices.serialscan.transport import PortGone, ScannerPort

log = logging.getLogger(__name__)

SUFFIX_NAMES = {"CR": "\r", "LF": "\n", "CRLF": "\r\n", "TAB": "\t"}
# Codes kept for a read that is about to start; older ones are stale anyway.
_KEPT_CODES = 32
_WAIT_SLICE_S = 0.05
_CLOSE_JOIN_S = 3.0


class SerialQrScanner(BarcodeReader):
    driver_name = "serial"

    def __init__(
        self,
        device_id: str = "barcode",
        port: str = "/dev/ttyACM0",
        baudrate: int = 9600,
        suffix: str = "\r",
        max_chars: int = MAX_PAYLOAD_CHARS,
        reconnect_interval_s: float = 1.0,
        gap_s: float = 0.5,
    ) -> None:
        if not isinstance(port, str) or not port.strip():
            raise ValueError(f"port must name a serial port such as /dev/ttyACM0, not {port!r}")
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise ValueError(f"baudrate must be a positive whole number, not {baudrate!r}")
        if (isinstance(max_chars, bool) or not isinstance(max_chars, int)
                or not 0 < max_chars <= MAX_PAYLOAD_CHARS):
            raise ValueError(f"max_chars must be a whole number from 1 to {MAX_PAYLOAD_CHARS} "
                             f"(the longest code the kiosk accepts), not {max_chars!r}")
        for name, value in (("reconnect_interval_s", reconnect_interval_s), ("gap_s", gap_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        framer = CodeFramer(_suffix(suffix), max_chars)
        super().__init__(device_id)
        self.port = port
        self.baudrate = baudrate
        self.reconnect_interval_s = float(reconnect_interval_s)
        self.gap_s = float(gap_s)
        self._framer = framer
        self._line = ScannerPort(port, baudrate)
        # (monotonic time the suffix arrived, what it ended); guarded by _arrived.
        self._codes: deque[tuple[float, Scanned]] = deque(maxlen=_KEPT_CODES)
        self._arrived = threading.Condition()
        self._counts = {"codes": 0, "staleCodes": 0, "invalid": 0, "noiseBytes": 0}
        self._closing = threading.Event()
        self._listener = threading.Thread(target=self._listen, name=f"{device_id}:serial",
                                          daemon=True)
        self._listener.start()

    # -- contract -------------------------------------------------------------------------
    def status(self) -> DeviceStatus:
        snapshot = super().status()
        with self._arrived:
            counts = dict(self._counts)
        return replace(snapshot, detail={**snapshot.detail, "port": self.port,
                                         "baudrate": self.baudrate, **counts})

    def capabilities(self) -> Capabilities:
        return Capabilities(self.device_class, self.driver_name, model="serial QR scanner",
                            features=frozenset({"qr", "serial", "reconnect"}))

    def close(self) -> None:
        """Stop listening and release the port."""
        super().close()
        self._closing.set()
        with self._arrived:
            self._arrived.notify_all()
        if self._listener is not threading.current_thread():
            self._listener.join(_CLOSE_JOIN_S)
        self._line.close()
        self._set_status(state=DeviceState.OFFLINE)

    def read(self, timeout: float, session_id: str | None = None) -> PendingCommand[str]:
        # "After the command started" counts from when it was asked for, so a code scanned
        # while an earlier command still holds the device is this command's.
        asked = time.monotonic()
        return self._start("read", lambda ctx: self._read_since(ctx, asked), timeout,
                           session_id)

    def _read(self, ctx: CommandContext) -> str:
        return self._read_since(ctx, time.monotonic())

    def _read_since(self, ctx: CommandContext, started: float) -> str:
        while True:
            self._require_ready()
            item = self._next_since(started, ctx)
            if item is None:
                ctx.check()
                continue
            if isinstance(item, Code):
                self._emit(EventKind.DATA_READ, request_id=ctx.request_id, payload=item.text)
                return item.text
            if isinstance(item, Oversized):
                raise CommandFailed(Completion.INVALID_DATA, "invalidMedia",
                                    f"code of {item.size} bytes is longer than "
                                    f"{self._framer.max_chars} characters")
            # Noise or an unreadable code: tell the screen, keep waiting for a good one.
            self._emit(EventKind.INVALID_MEDIA, severity=Severity.WARNING,
                       request_id=ctx.request_id)

    # -- reading --------------------------------------------------------------------------
    def _next_since(self, started: float, ctx: CommandContext) -> Scanned | None:
        with self._arrived:
            while self._codes and self._codes[0][0] < started:
                self._codes.popleft()
                self._counts["staleCodes"] += 1
            if not self._codes:
                self._arrived.wait(min(_WAIT_SLICE_S, ctx.remaining()))
                return None
            return self._codes.popleft()[1]

    def _require_ready(self) -> None:
        state = super().status().state
        if state in (DeviceState.ONLINE, DeviceState.DEVICE_BUSY, DeviceState.STARTING):
            return
        if state is DeviceState.NO_DEVICE:
            raise CommandFailed(Completion.DEVICE_NOT_READY, "noDevice",
                                f"no scanner on {self.port}")
        raise CommandFailed(Completion.DEVICE_NOT_READY, str(state), f"scanner is {state}")

    # -- the listening thread -------------------------------------------------------------
    def _listen(self) -> None:
        last_byte_at = time.monotonic()
        while not self._closing.is_set():
            if not self._line.is_open:
                if not self._attach():
                    self._closing.wait(self.reconnect_interval_s)
                    continue
            try:
                chunk = self._line.read()
            except PortGone as gone:
                self._detach(gone)
                self._closing.wait(self.reconnect_interval_s)
                continue
            now = time.monotonic()
            if chunk:
                last_byte_at = now
                self._received(now, self._framer.feed(chunk))
            elif self._framer.pending and now - last_byte_at >= self.gap_s:
                dropped = self._framer.discard_partial()
                if dropped:
                    log.info("%s: %d bytes without a suffix dropped as noise", self.device_id,
                             dropped)
                    with self._arrived:
                        self._counts["noiseBytes"] += dropped

    def _received(self, at: float, items: list[Scanned]) -> None:
        if not items:
            return
        with self._arrived:
            for item in items:
                if isinstance(item, Code):
                    self._counts["codes"] += 1
                else:
                    self._counts["invalid"] += 1
                    # Sizes only: the bytes may be a damaged personal code.
                    log.info("%s: %s", self.device_id, item)
                self._codes.append((at, item))
            self._arrived.notify_all()

    def _attach(self) -> bool:
        try:
            self._line.open()
        except PortGone as gone:
            self._no_device(gone)
            return False
        self._framer.reset()
        if super().status().state is DeviceState.NO_DEVICE:
            log.info("%s: scanner on %s is back", self.device_id, self.port)
            self._emit(EventKind.ATTACHED)
        self._set_status(state=DeviceState.ONLINE)
        return True

    def _detach(self, reason: Exception) -> None:
        self._line.close()
        self._framer.reset()
        self._no_device(reason)

    def _no_device(self, reason: Exception) -> None:
        before = super().status().state
        if before is DeviceState.NO_DEVICE or self._closing.is_set():
            return
        log.warning("%s: no scanner on %s (%s); retrying every %.3g s", self.device_id,
                    self.port, reason, self.reconnect_interval_s)
        self._set_status(state=DeviceState.NO_DEVICE)
        with self._arrived:
            self._arrived.notify_all()  # a waiting read fails now, not at its deadline
        if before is not DeviceState.STARTING:  # never there is not a detach
            self._emit(EventKind.DETACHED, severity=Severity.WARNING)


def _suffix(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError(f"suffix must be text such as \"\\r\" or CR, CRLF, LF, TAB; "
                         f"not {value!r}")
    text = SUFFIX_NAMES.get(value.upper(), value)
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"suffix must be ASCII, not {value!r}") from None
    if len(raw) > 4:
        raise ValueError(f"suffix must be at most 4 characters, not {value!r}")
    return raw
