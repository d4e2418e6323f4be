"""The 80 mm thermal receipt printer on a serial line, driven with python-escpos.

Before every print the printer's real-time status is read (DLE EOT 1 printer, 2 offline cause,
4 paper-roll sensor): a ticket is never started on an open cover or an empty roll. Chinese goes
out either as a 1-bit picture (``chinese="raster"``: any character the font has, the same look
as the PDF, but 576 dots × height over the line) or as GB18030 text in the printer's Chinese
mode (``chinese="gb18030"``: fast over 19200 baud, but only what the printer's own font holds;
a GBK-only font prints rare name characters 生僻字 as garbage). QR codes are the printer's own
(GS ( k) by default: sharp at its resolution and a few bytes instead of a picture.
"""

from __future__ import annotations

import logging
import termios
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import segno
import serial
from escpos.constants import RT_MASK_LOWPAPER, RT_MASK_NOPAPER, RT_STATUS, RT_STATUS_ONLINE
from escpos.constants import RT_STATUS_PAPER as _RT_STATUS_PAPER
from escpos.exceptions import DeviceNotFoundError
from escpos.printer import Serial
from PIL import Image

from devices.contract import (
    Capabilities,
    CommandContext,
    CommandFailed,
    Completion,
    DeviceState,
    DoorState,
    EventKind,
    PaperState,
    Severity,
)
from devices.printer import (
    Block,
    Field,
    Heading,
    ItemList,
    Paragraph,
    PrintDocument,
    PrintReceipt,
    QrCode,
    ReceiptPrinter,
    Rule,
    Signature,
    Spacer,
    Table,
    TextSize,
)
from devices.printing.fonts import FONT_PATH
from devices.printing.raster import render_raster

log = logging.getLogger(__name__)

# The renderers' font, so the path is set in one place.
DEFAULT_FONT = str(FONT_PATH)
RT_STATUS_OFFLINE_CAUSE = RT_STATUS + b"\x02"
RT_STATUS_ERROR_CAUSE = RT_STATUS + b"\x03"
RT_STATUS_PAPER = _RT_STATUS_PAPER  # DLE EOT 4

# Every DLE EOT answer has bit 1 and bit 4 set and bits 0 and 7 clear; anything else is not a
# status byte (line noise, a printer that does not know the command).
_FIXED_MASK, _FIXED_BITS = 0x93, 0x12
_OFFLINE = 0x08  # n=1 bit 3
_COVER_OPEN = 0x04  # n=2 bit 2
_PAPER_END_STOP = 0x20  # n=2 bit 5: stopped because the paper ran out
_ERROR = 0x40  # n=2 bit 6
_AUTOCUTTER_ERROR = 0x08  # n=3 bit 3
_FS_CHINESE_ON = b"\x1c&"  # FS &: select Chinese (Kanji) character mode
_FS_CHINESE_OFF = b"\x1c."  # FS .
_COLUMNS = 48  # font A (12 × 24) across 576 dots
_DOTS_PER_MM = 8  # 203 dpi
_RASTER_STRIP = 256  # rows per GS v 0 command: a cancel is noticed between strips
_SIZES = {TextSize.SMALL: 1, TextSize.NORMAL: 1, TextSize.LARGE: 2, TextSize.HUGE: 4}

# What a vanished line raises: pyserial's own errors, plain OSError, and termios.error (not an
# OSError) from tcflush/tcdrain on a pty or USB adapter that is gone.
_LINE_ERRORS = (OSError, serial.SerialException, termios.error)

PAPER_OUT = "paperOut"
PAPER_JAMMED = "paperJammed"
DOOR_OPEN = "doorOpen"


@dataclass(frozen=True)
class Sensors:
    """What the printer answered to DLE EOT; ``answered`` False: it did not answer at all."""

    answered: bool
    online: bool = False
    cover_open: bool = False
    paper: PaperState = PaperState.UNKNOWN
    error: bool = False

    @property
    def state(self) -> DeviceState:
        if not self.answered:
            return DeviceState.OFFLINE
        if self.error and self.paper is not PaperState.JAMMED:
            return DeviceState.HARDWARE_ERROR
        # Offline because the cover is open or the paper ended is told by door/paper; a printer
        # with both fine that still says offline is not printing.
        explained = self.cover_open or self.paper in (PaperState.OUT, PaperState.JAMMED)
        if not self.online and not explained:
            return DeviceState.OFFLINE
        return DeviceState.ONLINE

    def refusal(self) -> tuple[Completion, str] | None:
        if not self.answered or self.state is DeviceState.OFFLINE:
            return Completion.DEVICE_NOT_READY, str(DeviceState.OFFLINE)
        if self.cover_open:
            return Completion.HARDWARE_ERROR, DOOR_OPEN
        if self.paper is PaperState.JAMMED:
            return Completion.HARDWARE_ERROR, PAPER_JAMMED
        if self.paper is PaperState.OUT:
            return Completion.HARDWARE_ERROR, PAPER_OUT
        if self.state is DeviceState.HARDWARE_ERROR:
            return Completion.HARDWARE_ERROR, "printerError"
        return None


def _valid(byte: int) -> bool:
    return byte & _FIXED_MASK == _FIXED_BITS


def decode_status(printer: int | None, offline_cause: int | None, paper: int | None,
                  error_cause: int | None = None) -> Sensors:
    """DLE EOT answers (n = 1, 2, 4 and 3 when 2 says error) in HAL terms."""
    if printer is None or not _valid(printer):
        return Sensors(answered=False)
    cause = offline_cause if offline_cause is not None and _valid(offline_cause) else _FIXED_BITS
    if paper is None or not _valid(paper):
        paper_state = PaperState.UNKNOWN
    elif paper & RT_MASK_NOPAPER == RT_MASK_NOPAPER:  # python-escpos' own masks for n=4
        paper_state = PaperState.OUT
    elif paper & RT_MASK_LOWPAPER == RT_MASK_LOWPAPER:
        paper_state = PaperState.LOW
    else:
        paper_state = PaperState.FULL
    if cause & _PAPER_END_STOP:
        paper_state = PaperState.OUT
    error = bool(cause & _ERROR)
    if error and error_cause is not None and _valid(error_cause) \
            and error_cause & _AUTOCUTTER_ERROR:
        paper_state = PaperState.JAMMED  # the cutter is stuck in the paper
    return Sensors(True, online=not printer & _OFFLINE, cover_open=bool(cause & _COVER_OPEN),
                   paper=paper_state, error=error)


class _PortGone(Exception):
    """The serial port is missing or failed: NO_DEVICE until it opens again."""


class EscposReceiptPrinter(ReceiptPrinter):
    driver_name = "escpos"

    def __init__(self, device_id: str = "receipt_printer", port: str = "/dev/ttyUSB1",
                 baudrate: int = 19200, profile: str = "default", chinese: str = "raster",
                 qr: str = "native", cut: bool = True, status_timeout_s: float = 1.0,
                 width_dots: int = 576, font_path: str = DEFAULT_FONT,
                 poll_interval_s: float | None = 5.0, write_timeout_s: float = 30.0) -> None:
        """``chinese``: "raster" or "gb18030"; ``qr``: "native" (GS ( k) or "image";
        ``poll_interval_s``: how often the idle printer's sensors are read (None: only before
        a print)."""
        if chinese not in ("raster", "gb18030"):
            raise ValueError(f"chinese must be 'raster' or 'gb18030', not {chinese!r}")
        if qr not in ("native", "image"):
            raise ValueError(f"qr must be 'native' or 'image', not {qr!r}")
        super().__init__(device_id)
        self.port = port
        self.baudrate = baudrate
        self.profile = profile
        self.chinese = chinese
        self.qr = qr
        self.cut = cut
        self.status_timeout_s = status_timeout_s
        self.width_dots = width_dots
        self.font_path = font_path
        self.poll_interval_s = poll_interval_s
        self.write_timeout_s = write_timeout_s
        self._printer: Serial | None = None
        self._io = threading.Lock()  # one conversation on the line at a time
        self._printed: set[str] = set()
        self._sensors: Sensors | None = None
        self._closed = threading.Event()
        self._poller: threading.Thread | None = None
        self.refresh()
        if poll_interval_s:
            self._poller = threading.Thread(target=self._poll, name=f"{device_id}:status",
                                            daemon=True)
            self._poller.start()

    def capabilities(self) -> Capabilities:
        features = {"cut"} if self.cut else set()
        features |= {f"chinese:{self.chinese}", f"qr:{self.qr}"}
        return Capabilities(self.device_class, self.driver_name, model=self.profile,
                            features=frozenset(features))

    def close(self) -> None:
        super().close()
        self._closed.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(timeout=self.status_timeout_s * 4 + 1)
        with self._io:
            self._close_port()

    # -- the line -------------------------------------------------------------------------
    def _open(self) -> Serial:
        if self._printer is not None:
            return self._printer
        printer = Serial(devfile=self.port, baudrate=self.baudrate,
                         timeout=self.status_timeout_s, profile=self.profile)
        try:
            printer.open()
        except DeviceNotFoundError as exc:
            raise _PortGone(str(exc)) from exc
        port: serial.Serial = printer.device  # type: ignore[assignment]
        port.write_timeout = self.write_timeout_s
        self._fit_profile(printer)
        self._printer = printer
        log.info("%s: %s open at %d baud", self.device_id, self.port, self.baudrate)
        return printer

    def _fit_profile(self, printer: Serial) -> None:
        # python-escpos checks (and centres) pictures against the profile's paper width; the
        # "default" profile does not know it, so it gets ours (on this instance only).
        data = dict(printer.profile.profile_data)
        media = dict(data.get("media", {}))
        width = dict(media.get("width", {}))
        if not str(width.get("pixels", "")).isdigit():
            width["pixels"] = self.width_dots
            media["width"] = width
            data["media"] = media
            printer.profile.profile_data = data

    def _close_port(self) -> None:
        printer, self._printer = self._printer, None
        if printer is None:
            return
        try:
            printer.close()  # flushes first: fails when the line is gone
        except _LINE_ERRORS:
            port = printer._device
            if isinstance(port, serial.Serial):
                try:
                    port.close()
                except _LINE_ERRORS:
                    pass  # the descriptor is released either way
            printer.device = False  # so python-escpos' __del__ has nothing left to close

    def _ask(self, printer: Serial, command: bytes) -> int | None:
        port: serial.Serial = printer.device  # type: ignore[assignment]
        port.reset_input_buffer()  # a stale byte must not pass for this answer
        printer._raw(command)
        # One byte, as soon as it comes: python-escpos' query_status() reads 16 and so always
        # waits the whole timeout.
        answer = port.read(1)
        return answer[0] if answer else None

    def _read_sensors(self) -> Sensors:
        """DLE EOT 1, 2, 4 (and 3 after an error). Raises _PortGone. Call with _io held."""
        try:
            printer = self._open()
            status = self._ask(printer, RT_STATUS_ONLINE)
            if status is None:
                return Sensors(answered=False)
            cause = self._ask(printer, RT_STATUS_OFFLINE_CAUSE)
            paper = self._ask(printer, RT_STATUS_PAPER)
            error = None
            if cause is not None and _valid(cause) and cause & _ERROR:
                error = self._ask(printer, RT_STATUS_ERROR_CAUSE)
            return decode_status(status, cause, paper, error)
        except _LINE_ERRORS as exc:
            self._close_port()
            raise _PortGone(f"{type(exc).__name__}: {exc}") from exc

    # -- status ---------------------------------------------------------------------------
    def refresh(self) -> DeviceState:
        """Read the sensors now (opening the port if it is closed) and publish the status."""
        with self._io:
            return self._refresh_locked()

    def _refresh_locked(self) -> DeviceState:
        try:
            sensors = self._read_sensors()
        except _PortGone as gone:
            self._publish_gone(str(gone))
            return DeviceState.NO_DEVICE
        self._publish(sensors)
        return sensors.state

    def _publish_gone(self, why: str) -> None:
        was = self.status().state
        self._sensors = None
        self._set_status(state=DeviceState.NO_DEVICE, paper=PaperState.UNKNOWN,
                         door=DoorState.UNKNOWN, queue_depth=None, detail={"port": self.port})
        if was not in (DeviceState.NO_DEVICE, DeviceState.STARTING):
            log.warning("%s: %s lost (%s)", self.device_id, self.port, why)
            self._emit(EventKind.DETACHED, severity=Severity.WARNING)

    def _publish(self, sensors: Sensors) -> None:
        before = self._sensors
        was = self.status().state
        self._sensors = sensors
        if not sensors.answered:
            # The line is there but the printer says nothing: powered off or unplugged from the
            # adapter. Paper and cover are not known then.
            self._set_status(state=DeviceState.OFFLINE, paper=PaperState.UNKNOWN,
                             door=DoorState.UNKNOWN, queue_depth=0, detail={"port": self.port})
            return
        self._set_status(state=sensors.state, paper=sensors.paper,
                         door=DoorState.OPEN if sensors.cover_open else DoorState.CLOSED,
                         queue_depth=0, detail={"port": self.port})
        if was is DeviceState.NO_DEVICE:
            self._emit(EventKind.ATTACHED)
        old_paper = before.paper if before and before.answered else PaperState.FULL
        if sensors.paper is not old_paper and sensors.paper in (PaperState.LOW, PaperState.OUT):
            self._emit(EventKind.PAPER_THRESHOLD, payload=sensors.paper,
                       severity=Severity.ALARM if sensors.paper is PaperState.OUT
                       else Severity.WARNING)
        if sensors.paper is PaperState.JAMMED and old_paper is not PaperState.JAMMED:
            self._emit(EventKind.ERROR, severity=Severity.ALARM, error_kind=PAPER_JAMMED,
                       action="status")
        if sensors.cover_open and not (before and before.cover_open):
            self._emit(EventKind.ERROR, severity=Severity.ALARM, error_kind=DOOR_OPEN,
                       action="status")

    def _poll(self) -> None:
        assert self.poll_interval_s
        while not self._closed.wait(self.poll_interval_s):
            # Never queue behind a ticket being sent; the print reads the sensors itself.
            if self._current is not None or not self._io.acquire(blocking=False):
                continue
            try:
                self._refresh_locked()
            except Exception:  # the poller must outlive any surprise
                log.exception("%s: status poll failed", self.device_id)
            finally:
                self._io.release()

    # -- printing -------------------------------------------------------------------------
    def _print(self, ctx: CommandContext, document: PrintDocument) -> PrintReceipt:
        if document.job_key in self._printed:
            return PrintReceipt(document.job_key, 0, duplicate=True)
        # Rendered before the paper moves: a rendering fault must not leave half a ticket.
        parts = list(self._parts(document))
        ctx.check()
        with self._io:
            state = self._refresh_locked()
            if state is DeviceState.NO_DEVICE:
                raise CommandFailed(Completion.DEVICE_NOT_READY, str(DeviceState.NO_DEVICE),
                                    f"{self.port} not available")
            sensors = self._sensors
            assert sensors is not None
            refusal = sensors.refusal()
            if refusal is not None:
                raise CommandFailed(*refusal, "refused before anything was sent")
            ctx.check()
            log.info("%s: printing %s (%s, %s)", self.device_id, document.title, document.kind,
                     self.chinese)
            try:
                printer = self._open()
                self._send(ctx, printer, parts)
                port: serial.Serial = printer.device  # type: ignore[assignment]
                port.flush()  # until the last byte has left, before the sensors are read
                after = self._read_sensors()
            except (*_LINE_ERRORS, _PortGone) as exc:
                self._close_port()
                self._publish_gone(str(exc))
                raise CommandFailed(Completion.HARDWARE_ERROR, str(DeviceState.NO_DEVICE),
                                    "the line failed during the ticket") from exc
            self._publish(after)
        if after.answered and (after.paper is PaperState.OUT or after.cover_open):
            # The roll ended (or the cover opened) under this ticket: it is not whole, so the
            # key stays unprinted and a retry after a refill prints it again.
            raise CommandFailed(Completion.HARDWARE_ERROR,
                                DOOR_OPEN if after.cover_open else PAPER_OUT,
                                "the ticket did not come out whole")
        self._printed.add(document.job_key)
        return PrintReceipt(document.job_key, 1)

    # A part is ("raster", image) | ("qr", QrCode) | ("text", block)
    def _parts(self, document: PrintDocument) -> Iterator[tuple[str, Any]]:
        native_qr = self.qr == "native"
        if self.chinese == "gb18030":
            for block in document.blocks:
                yield ("qr", block) if isinstance(block, QrCode) else ("text", block)
            return
        run: list[Block] = []
        for block in document.blocks:
            if native_qr and isinstance(block, QrCode):
                if run:
                    yield "raster", self._raster(document, run)
                yield "qr", replace(block, caption="")
                # The caption is Chinese too: it goes with the picture that follows.
                run = [Paragraph(block.caption, TextSize.SMALL, center=True)] \
                    if block.caption else []
            else:
                run.append(block)
        if run:
            yield "raster", self._raster(document, run)

    def _raster(self, document: PrintDocument, blocks: list[Block]) -> Image.Image:
        return render_raster(replace(document, blocks=tuple(blocks)),
                             width_dots=self.width_dots, font_path=Path(self.font_path))

    def _send(self, ctx: CommandContext, printer: Serial, parts: list[tuple[str, Any]]) -> None:
        printer.hw("INIT")
        if self.chinese == "gb18030":
            printer._raw(_FS_CHINESE_ON)
        for kind, part in parts:
            if ctx.stopped:
                break  # cancel or deadline mid-ticket: cut what is there, then report it
            if kind == "raster":
                self._send_raster(ctx, printer, part)
            elif kind == "qr":
                self._send_qr(printer, part)
            else:
                self._send_text(printer, part)
        if self.chinese == "gb18030":
            printer._raw(_FS_CHINESE_OFF)
        if self.cut:
            printer.cut()
        else:
            printer.print_and_feed(6)
        ctx.check()

    def _send_raster(self, ctx: CommandContext, printer: Serial, image: Image.Image) -> None:
        for top in range(0, image.height, _RASTER_STRIP):
            if ctx.stopped:
                return
            strip = image.crop((0, top, image.width, min(image.height, top + _RASTER_STRIP)))
            printer.image(strip, impl="bitImageRaster", fragment_height=_RASTER_STRIP)

    def _send_qr(self, printer: Serial, block: QrCode) -> None:
        printer.set(align="center")
        modules = segno.make(block.payload, error="m").symbol_size(scale=1, border=0)[0]
        size = max(1, min(16, round(block.size_mm * _DOTS_PER_MM / modules)))
        printer.qr(block.payload, ec=1, size=size, native=self.qr == "native")
        if block.caption:
            self._line(printer, block.caption, align="center")
        printer.set(align="left")

    def _send_text(self, printer: Serial, block: Block) -> None:
        match block:
            case Heading(text=text, level=level):
                self._line(printer, text, align="center" if level == 1 else "left", bold=True,
                           size=2 if level == 1 else 1)
            case Paragraph(text=text, size=size, center=center, bold=bold, indent=indent):
                self._line(printer, ("\u3000\u3000" if indent else "") + text,
                           align="center" if center else "left", bold=bold,
                           size=_SIZES[size])
            case Field(label=label, value=value):
                self._line(printer, f"{label}：{value}")
            case ItemList(items=items, numbered=numbered):
                for n, item in enumerate(items, 1):
                    self._line(printer, f"{n}. {item}" if numbered else f"· {item}")
            case Table(header=header, rows=rows):
                for n, row in enumerate((header, *rows)):
                    self._line(printer, "  ".join(row), bold=n == 0)
            case Rule(dashed=dashed):
                self._line(printer, ("- " if dashed else "-") * (_COLUMNS // (2 if dashed
                                                                               else 1)))
            case Spacer(lines=lines):
                printer.ln(max(1, round(lines)))
            case Signature(label=label, value=value, date=date):
                self._line(printer, f"{label}：{value or '_' * 14}", align="right")
                if date:
                    self._line(printer, date, align="right")

    def _line(self, printer: Serial, text: str, align: str = "left", bold: bool = False,
              size: int = 1) -> None:
        printer.set(align=align, bold=bold, custom_size=True, width=size, height=size)
        # GB18030 is what the printer's Chinese mode (FS &) reads; python-escpos only knows
        # single-byte code pages, so the encoded line goes out as it is.
        printer._raw(text.encode("gb18030", errors="replace") + b"\n")
