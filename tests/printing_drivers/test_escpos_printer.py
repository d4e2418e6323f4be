"""The ESC/POS receipt printer over a real serial line: a pty pair whose master end is a small
printer simulator (parses the command stream, answers DLE EOT real-time status)."""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from devices.contract import Completion, DeviceState, DoorState, Event, EventKind, PaperState
from devices.escpos.printer import EscposReceiptPrinter, decode_status
from devices.printer import Heading, Paragraph, PrintDocument, QrCode, TextSize
from devices.printing.raster import render_raster

DLE, ESC, GS, FS = 0x10, 0x1B, 0x1D, 0x1C
# DLE EOT answers: bits 1 and 4 are always set.
OK = 0x12
OFFLINE = OK | 0x08
COVER_OPEN = OK | 0x04
PAPER_STOPPED = OK | 0x20
NEAR_END = OK | 0x0C
PAPER_END = OK | 0x60
QR_URL = "https://example.invalid/track/20260001"


@dataclass(frozen=True)
class Cmd:
    name: str
    args: tuple[int, ...] = ()
    data: bytes = b""


class _Incomplete(Exception):
    pass


def _parse_one(buf: bytes) -> tuple[Cmd, int]:
    """One command from the head of ``buf`` (its length too); _Incomplete if it is cut off."""

    def need(n: int) -> None:
        if len(buf) < n:
            raise _Incomplete

    first = buf[0]
    if first == DLE:
        need(3)
        if buf[1] == 0x04:
            return Cmd("DLE EOT", (buf[2],)), 3
        return Cmd(f"DLE {buf[1]:#x}", (buf[2],)), 3
    if first == ESC:
        need(2)
        op = chr(buf[1])
        if op in "@2":
            return Cmd(f"ESC {op}"), 2
        need(3)
        return Cmd(f"ESC {op}", (buf[2],)), 3
    if first == FS:
        need(2)
        op = chr(buf[1])
        if op in "&.":
            return Cmd(f"FS {op}"), 2
        need(3)
        return Cmd(f"FS {op}", (buf[2],)), 3
    if first == GS:
        need(2)
        op = chr(buf[1])
        if op == "v":
            need(8)
            width_bytes = buf[4] | buf[5] << 8
            height = buf[6] | buf[7] << 8
            end = 8 + width_bytes * height
            need(end)
            return Cmd("GS v 0", (buf[3], width_bytes, height), bytes(buf[8:end])), end
        if op == "(":
            need(5)
            end = 5 + (buf[3] | buf[4] << 8)
            need(end)
            body = bytes(buf[5:end])
            return Cmd(f"GS ( {chr(buf[2])}", (body[0], body[1]), body[2:]), end
        if op == "V":
            need(3)
            if buf[2] >= 65:
                need(4)
                return Cmd("GS V", (buf[2], buf[3])), 4
            return Cmd("GS V", (buf[2],)), 3
        need(3)
        return Cmd(f"GS {op}", (buf[2],)), 3
    if first == 0x0A:
        return Cmd("LF"), 1
    end = 0
    while end < len(buf) and buf[end] not in (DLE, ESC, GS, FS, 0x0A):
        end += 1
    if end == len(buf):
        raise _Incomplete  # the rest of the text may still be on its way
    return Cmd("TEXT", data=bytes(buf[:end])), end


class PrinterSim:
    """The printer's end of the line."""

    def __init__(self, link: Path) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self._slave)
        self.link = link
        link.unlink(missing_ok=True)
        # The driver opens a stable name, as it would /dev/ttyUSB1 (a udev symlink).
        link.symlink_to(os.ttyname(self._slave))
        self.status = {1: OK, 2: OK, 3: OK, 4: OK}
        self.answering = True
        self.on_cut: Callable[[PrinterSim], None] | None = None
        self.commands: list[Cmd] = []
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            self._buf.extend(chunk)
            while self._buf:
                try:
                    cmd, used = _parse_one(bytes(self._buf))
                except _Incomplete:
                    break
                del self._buf[:used]
                with self._lock:
                    self.commands.append(cmd)
                if cmd.name == "DLE EOT" and self.answering:
                    os.write(self.master, bytes([self.status[cmd.args[0]]]))
                if cmd.name == "GS V" and self.on_cut is not None:
                    self.on_cut(self)

    def printed(self) -> list[Cmd]:
        """What went to paper: the stream without the status queries."""
        with self._lock:
            return [c for c in self.commands if c.name != "DLE EOT"]

    def queries(self) -> list[int]:
        with self._lock:
            return [c.args[0] for c in self.commands if c.name == "DLE EOT"]

    def unplug(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self.master)
        os.close(self._slave)
        self.link.unlink(missing_ok=True)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[PrinterSim]:
    printer_sim = PrinterSim(tmp_path / "ttyUSB1")
    yield printer_sim
    if not printer_sim._stop.is_set():
        printer_sim.unplug()


MakePrinter = Callable[..., EscposReceiptPrinter]


@pytest.fixture
def make_printer(sim: PrinterSim) -> Iterator[MakePrinter]:
    made: list[EscposReceiptPrinter] = []

    def make(**options: object) -> EscposReceiptPrinter:
        settings: dict[str, object] = {"port": str(sim.link), "status_timeout_s": 0.3,
                                       "poll_interval_s": None}
        settings.update(options)
        printer = EscposReceiptPrinter(**settings)  # type: ignore[arg-type]
        made.append(printer)
        return printer

    yield make
    for printer in made:
        printer.close()


def ticket(key: str) -> PrintDocument:
    return PrintDocument(kind="ticket", job_key=key, title="受理回执", blocks=(
        Heading("受理回执"), Paragraph("受理编号 20260001"),
        QrCode(QR_URL, caption="扫码查询"), Paragraph("请妥善保管", TextSize.SMALL)))


def settle(sim: PrinterSim, count: int) -> None:
    """Wait until the simulator has parsed ``count`` commands (the line is asynchronous)."""
    deadline = time.monotonic() + 5
    while len(sim.commands) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def raster_image(strips: list[Cmd]) -> Image.Image:
    """The picture a run of GS v 0 strips draws (1 bits are black dots)."""
    width = strips[0].args[1] * 8
    rows = [Image.frombytes("1", (width, c.args[2]), c.data) for c in strips]
    picture = Image.new("1", (width, sum(r.height for r in rows)))
    y = 0
    for row in rows:
        picture.paste(row, (0, y))
        y += row.height
    return ImageChops.invert(picture.convert("L")).convert("1")


# -- the command stream -------------------------------------------------------------------
def test_raster_ticket_stream(sim: PrinterSim, make_printer: MakePrinter) -> None:
    printer = make_printer(chinese="raster")
    sim.commands.clear()
    document = ticket("raster-1")

    result = printer.print_document(document, timeout=30).wait()

    assert result.completion is Completion.SUCCESS, result
    printed = sim.printed()
    names = [c.name for c in printed]
    assert names[0] == "ESC @"
    qr_at = names.index("GS ( k")
    before_qr = [c for c in printed[:qr_at] if c.name == "GS v 0"]
    assert before_qr and all(c.args[1] == 576 // 8 for c in before_qr)
    # Exactly the picture the renderer made of the blocks above the code.
    expected = render_raster(replace(document, blocks=document.blocks[:2]), width_dots=576)
    assert ImageChops.difference(raster_image(before_qr).convert("L"),
                                 expected.convert("L")).getbbox() is None
    qr = [c for c in printed if c.name == "GS ( k"]
    assert [c.args for c in qr] == [(ord("1"), 65), (ord("1"), 67), (ord("1"), 69),
                                    (ord("1"), 80), (ord("1"), 81)]
    assert qr[3].data == b"0" + QR_URL.encode()
    assert Cmd("ESC a", (1,)) in printed[:qr_at]  # the code is centred
    after_qr = [c for c in printed[qr_at:] if c.name == "GS v 0"]
    assert after_qr, "caption and the last paragraph follow as a picture"
    assert names[-2:] == ["ESC d", "GS V"]
    assert printed[-1].args == (0,)  # full cut
    assert not any(c.name == "TEXT" for c in printed)
    assert sim.queries()[:3] == [1, 2, 4]  # status read before anything was sent


def test_gb18030_ticket_stream(sim: PrinterSim, make_printer: MakePrinter) -> None:
    printer = make_printer(chinese="gb18030", cut=True)
    sim.commands.clear()

    result = printer.print_document(ticket("text-1"), timeout=30).wait()

    assert result.ok, result
    printed = sim.printed()
    names = [c.name for c in printed]
    assert names[:2] == ["ESC @", "FS &"]
    texts = [c.data for c in printed if c.name == "TEXT"]
    assert "受理回执".encode("gb18030") in texts
    assert "受理编号 20260001".encode("gb18030") in texts
    assert "扫码查询".encode("gb18030") in texts
    heading = names.index("TEXT")
    assert Cmd("GS !", (0x11,)) in printed[:heading]  # the heading at double width and height
    store = next(c for c in printed if c.name == "GS ( k" and c.args[1] == 80)
    assert store.data == b"0" + QR_URL.encode()
    assert "GS v 0" not in names
    assert names.index("FS .") < names.index("GS V")


def test_image_qr_is_part_of_the_picture(sim: PrinterSim, make_printer: MakePrinter) -> None:
    printer = make_printer(chinese="raster", qr="image")
    sim.commands.clear()
    document = ticket("image-qr")

    assert printer.print_document(document, timeout=30).wait().ok
    printed = sim.printed()
    assert not any(c.name == "GS ( k" for c in printed)
    strips = [c for c in printed if c.name == "GS v 0"]
    expected = render_raster(document, width_dots=576)
    assert ImageChops.difference(raster_image(strips).convert("L"),
                                 expected.convert("L")).getbbox() is None


def test_same_key_prints_once(sim: PrinterSim, make_printer: MakePrinter) -> None:
    printer = make_printer(chinese="gb18030")
    first = printer.print_document(ticket("once"), timeout=30).wait()
    again = printer.print_document(ticket("once"), timeout=30).wait()

    assert first.ok and first.data is not None and not first.data.duplicate
    assert again.ok and again.data is not None and again.data.duplicate
    assert [c.name for c in sim.printed()].count("GS V") == 1


# -- status -------------------------------------------------------------------------------
def test_paper_near_end_prints_and_warns(sim: PrinterSim, make_printer: MakePrinter) -> None:
    printer = make_printer(chinese="gb18030")
    events: list[Event] = []
    printer.subscribe(events.append)
    sim.status[4] = NEAR_END

    result = printer.print_document(ticket("low-1"), timeout=30).wait()

    assert result.ok
    assert printer.status().paper is PaperState.LOW
    assert printer.status().usable
    assert [e.payload for e in events if e.kind is EventKind.PAPER_THRESHOLD] == [PaperState.LOW]


@pytest.mark.parametrize(("status", "code", "paper", "door"), [
    ({4: PAPER_END, 1: OFFLINE, 2: PAPER_STOPPED}, "paperOut", PaperState.OUT,
     DoorState.CLOSED),
    ({2: COVER_OPEN, 1: OFFLINE}, "doorOpen", PaperState.FULL, DoorState.OPEN),
])
def test_fault_refuses_before_sending(sim: PrinterSim, make_printer: MakePrinter,
                                      status: dict[int, int], code: str, paper: PaperState,
                                      door: DoorState) -> None:
    printer = make_printer()
    sim.status.update(status)
    sim.commands.clear()

    result = printer.print_document(ticket(f"fault-{code}"), timeout=30).wait()

    assert (result.completion, result.error_code) == (Completion.HARDWARE_ERROR, code)
    assert sim.printed() == []
    current = printer.status()
    assert (current.paper, current.door) == (paper, door)
    assert not current.usable

    sim.status.update({1: OK, 2: OK, 4: OK})  # refilled / closed
    assert printer.print_document(ticket(f"fault-{code}"), timeout=30).wait().ok


def test_paper_running_out_under_the_ticket(sim: PrinterSim, make_printer: MakePrinter) -> None:
    printer = make_printer(chinese="gb18030")

    def roll_ends(printer_sim: PrinterSim) -> None:
        printer_sim.status.update({4: PAPER_END, 2: PAPER_STOPPED, 1: OFFLINE})

    sim.on_cut = roll_ends
    torn = printer.print_document(ticket("torn-1"), timeout=30).wait()
    assert (torn.completion, torn.error_code) == (Completion.HARDWARE_ERROR, "paperOut")
    assert printer.status().paper is PaperState.OUT

    # Not whole, so not printed: after a refill the same key prints again.
    sim.on_cut = None
    sim.status.update({1: OK, 2: OK, 4: OK})
    again = printer.print_document(ticket("torn-1"), timeout=30).wait()
    assert again.ok and again.data is not None and not again.data.duplicate
    assert [c.name for c in sim.printed()].count("GS V") == 2


def test_poller_keeps_status_current(sim: PrinterSim, make_printer: MakePrinter) -> None:
    printer = make_printer(poll_interval_s=0.05)
    assert printer.status().paper is PaperState.FULL
    sim.status[4] = PAPER_END

    deadline = time.monotonic() + 5
    while printer.status().paper is not PaperState.OUT and time.monotonic() < deadline:
        time.sleep(0.02)
    assert printer.status().paper is PaperState.OUT
    assert not printer.status().usable


def test_silent_printer_is_offline(sim: PrinterSim, make_printer: MakePrinter) -> None:
    sim.answering = False
    printer = make_printer()

    assert printer.status().state is DeviceState.OFFLINE
    result = printer.print_document(ticket("silent"), timeout=30).wait()
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "offline")
    assert sim.printed() == []


def test_port_gone_is_no_device_until_it_returns(sim: PrinterSim, make_printer: MakePrinter,
                                                 tmp_path: Path) -> None:
    printer = make_printer(chinese="gb18030")
    assert printer.print_document(ticket("before"), timeout=30).wait().ok
    events: list[Event] = []
    printer.subscribe(events.append)

    sim.unplug()
    gone = printer.print_document(ticket("while-gone"), timeout=30).wait()

    assert (gone.completion, gone.error_code) == (Completion.DEVICE_NOT_READY, "noDevice")
    assert printer.status().state is DeviceState.NO_DEVICE
    assert any(e.kind is EventKind.DETACHED for e in events)

    back = PrinterSim(sim.link)  # plugged in again under the same name
    try:
        result = printer.print_document(ticket("while-gone"), timeout=30).wait()
        assert result.ok, result
        assert printer.status().state is DeviceState.ONLINE
        assert any(e.kind is EventKind.ATTACHED for e in events)
        settle(back, 1)
        assert "GS V" in [c.name for c in back.printed()]
    finally:
        printer.close()
        back.unplug()


def test_missing_port_at_start_is_no_device(tmp_path: Path) -> None:
    printer = EscposReceiptPrinter(port=str(tmp_path / "ttyUSB9"), poll_interval_s=None)
    try:
        assert printer.status().state is DeviceState.NO_DEVICE
        result = printer.print_document(ticket("nowhere"), timeout=10).wait()
        assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY,
                                                          "noDevice")
    finally:
        printer.close()


@pytest.mark.parametrize(("answers", "state", "paper", "cover"), [
    ((OK, OK, OK), DeviceState.ONLINE, PaperState.FULL, False),
    ((OK, OK, NEAR_END), DeviceState.ONLINE, PaperState.LOW, False),
    ((OFFLINE, PAPER_STOPPED, PAPER_END), DeviceState.ONLINE, PaperState.OUT, False),
    ((OFFLINE, COVER_OPEN, OK), DeviceState.ONLINE, PaperState.FULL, True),
    ((OFFLINE, OK, OK), DeviceState.OFFLINE, PaperState.FULL, False),
    ((None, None, None), DeviceState.OFFLINE, PaperState.UNKNOWN, False),
    ((0xFF, OK, OK), DeviceState.OFFLINE, PaperState.UNKNOWN, False),  # not a status byte
])
def test_decode_status(answers: tuple[int | None, int | None, int | None], state: DeviceState,
                       paper: PaperState, cover: bool) -> None:
    sensors = decode_status(*answers)
    assert (sensors.state, sensors.paper, sensors.cover_open) == (state, paper, cover)


def test_autocutter_error_reads_as_jam() -> None:
    sensors = decode_status(OFFLINE, OK | 0x40, OK, OK | 0x08)
    assert sensors.paper is PaperState.JAMMED
    assert sensors.refusal() == (Completion.HARDWARE_ERROR, "paperJammed")
