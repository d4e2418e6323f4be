"""The serial QR scanner driver over a real pty pair: pyserial opens the slave side, the test
writes what a scanner sends to the master side."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from devices.barcode import MAX_PAYLOAD_CHARS
from devices.contract import Completion, DeviceClass, DeviceState, EventKind
from devices.serialscan import SerialQrScanner
from tests.device_events import Events, wait_until
from tests.serialscan.line import ScannerLine

FAST = {"reconnect_interval_s": 0.05, "gap_s": 0.1}
# A fictional resident ID number: what a code may carry and a log must never show.
PERSONAL = "110101199003074514"


@pytest.fixture
def line(tmp_path) -> Iterator[ScannerLine]:
    pty = ScannerLine(tmp_path)
    yield pty
    pty.close()


@pytest.fixture
def make(line) -> Iterator:
    made: list[SerialQrScanner] = []

    def build(**options) -> SerialQrScanner:
        scanner = SerialQrScanner("barcode", **{"port": str(line.path), **FAST, **options})
        made.append(scanner)
        return scanner

    yield build
    for scanner in made:
        scanner.close()


@pytest.fixture
def online(make):
    def build(**options) -> SerialQrScanner:
        scanner = make(**options)
        assert wait_until(lambda: scanner.status().state is DeviceState.ONLINE)
        return scanner
    return build


def reading(scanner: SerialQrScanner, timeout: float = 5.0):
    """Start a read: what is sent from now on is "after the command started"."""
    return scanner.read(timeout)


def test_reads_a_code(line, online):
    scanner = online()
    events = Events(scanner)
    pending = reading(scanner)
    line.send(b"ZZ1:APPT-0001\r")
    result = pending.wait(5)
    assert result.ok and result.data == "ZZ1:APPT-0001"
    data_read = events.of(EventKind.DATA_READ)
    assert len(data_read) == 1 and data_read[0].request_id == result.request_id
    assert data_read[0].payload == "ZZ1:APPT-0001"
    assert scanner.status().detail["codes"] == 1
    caps = scanner.capabilities()
    assert caps.driver == "serial" and caps.device_class is DeviceClass.BARCODE_READER


def test_a_code_split_over_many_writes(line, online):
    scanner = online()
    pending = reading(scanner)
    line.send(b"SPLIT-INTO-PIECES-0123456789\r", pieces=6, pause_s=0.02)
    assert pending.wait(5).data == "SPLIT-INTO-PIECES-0123456789"


@pytest.mark.parametrize("suffix", ["\r", "CR", "\n", "\r\n", "crlf"])
def test_cr_lf_scanners(line, online, suffix):
    scanner = online(suffix=suffix)
    first = reading(scanner)
    line.send(b"FIRST\r\n")
    assert first.wait(5).data == "FIRST"
    second = reading(scanner)
    line.send(b"SECOND\r\n")
    assert second.wait(5).data == "SECOND"  # not "\nSECOND"


def test_a_tab_suffix(line, online):
    scanner = online(suffix="\t")
    pending = reading(scanner)
    line.send(b"TABBED\t")
    assert pending.wait(5).data == "TABBED"


def test_chinese_in_gbk_and_utf8(line, online):
    text = "政务服务中心预约码:A-0012"
    scanner = online()
    for encoding in ("gbk", "utf-8"):
        pending = reading(scanner)
        line.send(text.encode(encoding) + b"\r")
        assert pending.wait(5).data == text


def test_a_code_shown_while_nobody_reads_is_dropped(line, online):
    scanner = online()
    line.send(b"SOMEONE-ELSES\r")
    assert wait_until(lambda: scanner.status().detail["codes"] == 1)
    pending = scanner.read(0.3)
    result = pending.wait(5)
    assert (result.completion, result.error_code) == (Completion.TIME_OUT, "timeOut")
    assert scanner.status().detail["staleCodes"] == 1
    pending = reading(scanner)
    line.send(b"MINE\r")
    assert pending.wait(5).data == "MINE"


def test_garbage_is_invalid_media_and_the_read_goes_on(line, online):
    scanner = online()
    events = Events(scanner)
    pending = reading(scanner)
    line.send(b"\xff\xfe\x00\x81\x13\r")
    assert events.wait(EventKind.INVALID_MEDIA)
    assert not pending.done
    assert events.of(EventKind.INVALID_MEDIA)[0].request_id == pending.request_id
    line.send(b"GOOD\r")
    assert pending.wait(5).data == "GOOD"
    assert scanner.status().detail["invalid"] == 1


def test_noise_without_a_suffix_is_dropped_when_the_line_goes_quiet(line, online):
    scanner = online()
    pending = reading(scanner)
    line.send(b"\x13\x37\xaa")
    assert wait_until(lambda: scanner.status().detail["noiseBytes"] == 3)
    line.send(b"CLEAN\r")
    assert pending.wait(5).data == "CLEAN"


@pytest.mark.parametrize("options, size", [({}, MAX_PAYLOAD_CHARS + 1), ({"max_chars": 10}, 11)])
def test_an_oversized_code_is_invalid_data(line, online, options, size):
    scanner = online(**options)
    events = Events(scanner)
    pending = reading(scanner)
    line.send(b"A" * size + b"\r")
    result = pending.wait(5)
    assert (result.completion, result.error_code) == (Completion.INVALID_DATA, "invalidMedia")
    assert events.of(EventKind.ERROR)[0].error_kind == "invalidMedia"
    assert not events.of(EventKind.DATA_READ)
    # The scanner still works for the next citizen.
    pending = reading(scanner)
    line.send(b"SHORT\r")
    assert pending.wait(5).data == "SHORT"


def test_timeout_and_cancel_are_different(online):
    scanner = online()
    result = scanner.read(0.2).wait(5)
    assert (result.completion, result.error_code) == (Completion.TIME_OUT, "timeOut")
    pending = reading(scanner, timeout=10)
    pending.cancel()
    assert pending.wait(5).completion is Completion.CANCELED


def test_unplug_during_a_read_and_replug(line, online):
    scanner = online()
    events = Events(scanner)
    pending = reading(scanner, timeout=10)
    line.unplug()
    result = pending.wait(5)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "noDevice")
    assert events.wait(EventKind.DETACHED)
    assert scanner.status().state is DeviceState.NO_DEVICE
    result = scanner.read(1).wait(5)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "noDevice")

    line.replug()
    assert events.wait(EventKind.ATTACHED)
    assert wait_until(lambda: scanner.status().state is DeviceState.ONLINE)
    pending = reading(scanner)
    line.send(b"AFTER-REPLUG\r")
    assert pending.wait(5).data == "AFTER-REPLUG"
    assert len(events.of(EventKind.DETACHED)) == 1 and len(events.of(EventKind.ATTACHED)) == 1


def test_a_port_absent_at_start(tmp_path, make):
    late = tmp_path / "late" / "ttyQR"
    scanner = make(port=str(late))
    events = Events(scanner)
    assert wait_until(lambda: scanner.status().state is DeviceState.NO_DEVICE)
    late.parent.mkdir()
    pty = ScannerLine(late.parent)
    try:
        assert events.wait(EventKind.ATTACHED)
        assert wait_until(lambda: scanner.status().state is DeviceState.ONLINE)
        assert not events.of(EventKind.DETACHED)  # it was never there
    finally:
        scanner.close()
        pty.close()


def test_close_releases_the_port_and_refuses_reads(line, online):
    scanner = online()
    scanner.close()
    assert not any(t.name == "barcode:serial" for t in threading.enumerate())
    assert scanner.status().state is DeviceState.OFFLINE
    result = scanner.read(1).wait(5)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "offline")
    # The port is free again: another driver (or a reopened one) can take it.
    other = SerialQrScanner("other", port=str(line.path), **FAST)
    try:
        assert wait_until(lambda: other.status().state is DeviceState.ONLINE)
    finally:
        other.close()


def test_codes_never_reach_the_log(line, online, caplog):
    scanner = online(max_chars=30)
    with caplog.at_level(logging.DEBUG):
        pending = reading(scanner)
        line.send(PERSONAL.encode() + b"\r")
        assert pending.wait(5).data == PERSONAL
        pending = reading(scanner)
        line.send(b"\x01" + PERSONAL.encode() + b"\r")  # unreadable, still personal
        line.send(PERSONAL.encode() * 2 + b"\r")  # oversized
        assert pending.wait(5).completion is Completion.INVALID_DATA
    assert PERSONAL not in caplog.text and PERSONAL[6:14] not in caplog.text


@pytest.mark.parametrize("options, message", [
    ({"port": ""}, "port"),
    ({"baudrate": 0}, "baudrate"),
    ({"baudrate": "9600"}, "baudrate"),
    ({"suffix": ""}, "suffix"),
    ({"suffix": "回车"}, "suffix"),
    ({"suffix": "\r\n\r\n\r"}, "suffix"),
    ({"max_chars": 0}, "max_chars"),
    ({"max_chars": MAX_PAYLOAD_CHARS + 1}, "max_chars"),
    ({"reconnect_interval_s": 0}, "reconnect_interval_s"),
    ({"gap_s": -1}, "gap_s"),
])
def test_bad_settings_are_value_errors_naming_them(options, message):
    before = threading.active_count()
    with pytest.raises(ValueError, match=message):
        SerialQrScanner("barcode", **{"port": "/dev/ttyACM0", **options})
    assert threading.active_count() == before
