"""The ga467 driver against a simulated SAM over a real pseudo-terminal (pyserial on the
slave side), with fictional people."""

from __future__ import annotations

import io
import logging
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from devices import idnumber
from devices.contract import Completion, DeviceState, EventKind, MediaState
from devices.ga467 import Ga467IdCardReader, record
from devices.identity import DocumentType, IdentityError, PhotoStatus
from tests.device_events import Events, wait_until
from tests.devices import sam_sim
from tests.devices.sam_sim import SamLine, SimCard

HERE = Path(__file__).parent
NAME = "测试乙"
ADDRESS = "北京市东城区测试胡同8号"
ID_FIRST17 = "11010119851120456"
ID_NUMBER = ID_FIRST17 + idnumber.check_digit(ID_FIRST17)
FAST = {"response_timeout_s": 0.15, "poll_interval_s": 0.05}
# The poller stays quiet after attaching, so a scripted fault reaches the command.
QUIET = {"response_timeout_s": 0.15, "poll_interval_s": 60.0}


def card_text(**overrides: str) -> bytes:
    fields = {"name": NAME, "gender_code": "2", "nation_code": "03", "birth": "19851120",
              "address": ADDRESS, "id_number": ID_NUMBER, "issuer": "北京市公安局东城分局",
              "valid_from": "20150601", "valid_until": "20350601"}
    fields.update(overrides)
    return record.encode_text(**fields)


def wlt(first: int = 0x12, second: int = 0x34) -> bytes:
    return bytes([first, second]) + bytes(range(256)) * 3 + bytes(254)


@pytest.fixture
def line(tmp_path):
    sam_line = SamLine(tmp_path)
    yield sam_line
    sam_line.close()


@pytest.fixture
def make_reader(line):
    readers: list[Ga467IdCardReader] = []

    def make(port: str | None = None, **options) -> Ga467IdCardReader:
        reader = Ga467IdCardReader(port=port or str(line.path), **options)
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.close()


@pytest.fixture
def online(make_reader):
    def make(**options) -> Ga467IdCardReader:
        reader = make_reader(**{**FAST, **options})
        assert wait_until(lambda: reader.status().state is DeviceState.ONLINE)
        return reader
    return make


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    # A test of the ctypes plumbing only: this plug-in does not decode WLT (see its source).
    target = tmp_path_factory.mktemp("plugin") / "libwlt_test.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(target),
                    str(HERE / "wlt_test_plugin.c")], check=True)
    return target


# -- reading ------------------------------------------------------------------------------
def test_reads_a_card(line, online):
    line.sim.insert(SimCard(card_text(), wlt()))
    reader = online()
    events = Events(reader)
    result = reader.read_identity(5).wait(10)
    assert result.ok, result
    doc = result.data
    assert doc.document_type is DocumentType.RESIDENT_ID
    assert (doc.name, doc.id_number, doc.gender, doc.ethnicity) == (NAME, ID_NUMBER, "女", "回")
    assert doc.address == ADDRESS and doc.nationality == "CHN"
    assert str(doc.birth_date) == "1985-11-20" and str(doc.valid_until) == "2035-06-01"
    assert doc.authenticity == "verified" and doc.authenticity_detail == "SAM"
    assert doc.photo is None and doc.photo_status is PhotoStatus.UNAVAILABLE
    assert doc.read_stats["frames"] >= 3 and "seconds" in doc.read_stats
    assert doc.read_stats["retries"] == 0
    data_read = [e for e in events.items if e.kind is EventKind.DATA_READ]
    assert len(data_read) == 1 and data_read[0].request_id == result.request_id
    assert data_read[0].payload is None
    assert reader.status().media is MediaState.PRESENT
    assert reader.status().detail["sam"] == "ok"
    assert reader.status().detail["samId"] == "05.01-20250101-0000000042-1234567890"
    assert line.sim.requests[sam_sim.READ_BASE] == 1


def test_waits_for_a_card_presented_during_the_command(line, online):
    reader = online()
    events = Events(reader)
    pending = reader.read_identity(5)
    assert line.sim.wait_requests(sam_sim.FIND, line.sim.requests[sam_sim.FIND] + 3)
    line.sim.insert(SimCard(card_text()))
    result = pending.wait(10)
    assert result.ok and result.data.id_number == ID_NUMBER
    assert EventKind.MEDIA_INSERTED in events.kinds()


def test_long_term_validity(line, online):
    line.sim.insert(SimCard(card_text(valid_until="长期")))
    result = online().read_identity(5).wait(10)
    assert result.ok and result.data.valid_until is None


def test_no_card_is_time_out_no_media(online):
    result = online().read_identity(0.4).wait(5)
    assert (result.completion, result.error_code) == (Completion.TIME_OUT,
                                                      IdentityError.NO_MEDIA)


def test_cancel_is_canceled(line, online):
    reader = online()
    pending = reader.read_identity(10)
    assert line.sim.wait_requests(sam_sim.FIND, line.sim.requests[sam_sim.FIND] + 2)
    pending.cancel()
    result = pending.wait(5)
    assert result.completion is Completion.CANCELED


def test_bad_check_digit_is_bad_record(line, online, caplog):
    wrong = ID_NUMBER[:17] + ("0" if ID_NUMBER[17] != "0" else "1")
    line.sim.insert(SimCard(card_text(id_number=wrong)))
    with caplog.at_level(logging.DEBUG):
        result = online().read_identity(5).wait(10)
    assert (result.completion, result.error_code) == (Completion.INVALID_DATA,
                                                      IdentityError.BAD_RECORD)
    assert wrong not in result.message and wrong[6:14] not in result.message
    assert wrong not in caplog.text and NAME not in caplog.text


# -- status bytes -------------------------------------------------------------------------
@pytest.mark.parametrize("command, sw3, completion, code", [
    (sam_sim.SELECT, 0x81, Completion.INVALID_DATA, IdentityError.INVALID_MEDIA),
    (sam_sim.SELECT, 0x80, Completion.USER_ERROR, IdentityError.MEDIA_REMOVED),
    (sam_sim.READ_BASE, 0x41, Completion.USER_ERROR, IdentityError.MEDIA_REMOVED),
    (sam_sim.READ_BASE, 0x80, Completion.USER_ERROR, IdentityError.MEDIA_REMOVED),
    (sam_sim.READ_BASE, 0x32, Completion.INVALID_DATA, IdentityError.INVALID_MEDIA),
    (sam_sim.READ_BASE, 0x33, Completion.INVALID_DATA, IdentityError.INVALID_MEDIA),
    (sam_sim.FIND, 0x40, Completion.INVALID_DATA, IdentityError.INVALID_MEDIA),
    (sam_sim.FIND, 0x60, Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE),
    (sam_sim.FIND, 0x66, Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE),
    (sam_sim.SELECT, 0x21, Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE),
    (sam_sim.SELECT, 0x23, Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE),
    (sam_sim.READ_BASE, 0x24, Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE),
    (sam_sim.READ_BASE, 0x31, Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE),
    (sam_sim.READ_BASE, 0x47, Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE),
    (sam_sim.READ_BASE, 0x91, Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE),
    (sam_sim.READ_BASE, 0x10, Completion.HARDWARE_ERROR, IdentityError.LINK_ERROR),
    (sam_sim.READ_BASE, 0x11, Completion.HARDWARE_ERROR, IdentityError.LINK_ERROR),
])
def test_status_bytes(line, online, command, sw3, completion, code):
    line.sim.insert(SimCard(card_text()))
    reader = online(**QUIET)
    events = Events(reader)
    line.sim.fail(command, sw3, times=None)
    result = reader.read_identity(5).wait(10)
    assert (result.completion, result.error_code) == (completion, code)
    if code == IdentityError.INVALID_MEDIA:
        assert EventKind.INVALID_MEDIA in events.kinds()
    if code == IdentityError.SAM_FAILURE:
        status = reader.status()
        assert status.state is DeviceState.HARDWARE_ERROR
        assert status.detail["sam"] == "fault" and status.detail["samStatus"] == f"0x{sw3:02X}"
    if code == IdentityError.MEDIA_REMOVED:
        assert reader.status().media is MediaState.NOT_PRESENT
    if code == IdentityError.LINK_ERROR:  # the SAM saw damaged requests: resent each time
        assert line.sim.faults_sent[str(sw3)] == reader.retries + 1


def test_a_transient_sam_line_fault_is_retried(line, online):
    line.sim.insert(SimCard(card_text()))
    reader = online(**QUIET)
    line.sim.fail(sam_sim.READ_BASE, 0x10, times=1)
    result = reader.read_identity(5).wait(10)
    assert result.ok and result.data.read_stats["retries"] == 1


def test_card_removed_mid_read(line, online):
    line.sim.insert(SimCard(card_text()))
    reader = online(**QUIET)
    events = Events(reader)
    line.sim.fail(sam_sim.READ_BASE, sam_sim.REMOVE)
    result = reader.read_identity(5).wait(10)
    assert (result.completion, result.error_code) == (Completion.USER_ERROR,
                                                      IdentityError.MEDIA_REMOVED)
    assert events.count(EventKind.MEDIA_REMOVED) == 1
    assert reader.status().media is MediaState.NOT_PRESENT


# -- the line -----------------------------------------------------------------------------
def test_garbage_before_a_frame_is_skipped(line, online):
    line.sim.insert(SimCard(card_text()))
    reader = online(**QUIET)
    line.sim.fail(sam_sim.READ_BASE, sam_sim.GARBAGE)
    result = reader.read_identity(5).wait(10)
    assert result.ok
    assert line.sim.faults_sent[sam_sim.GARBAGE] == 1
    assert result.data.read_stats["noiseBytes"] > 0
    assert result.data.read_stats["retries"] == 0


@pytest.mark.parametrize("fault", [sam_sim.SHORT, sam_sim.CHECKSUM, sam_sim.LENGTH,
                                   sam_sim.SILENCE])
def test_one_bad_answer_is_retried(line, online, fault):
    line.sim.insert(SimCard(card_text()))
    reader = online(**QUIET)
    line.sim.fail(sam_sim.READ_BASE, fault)
    result = reader.read_identity(5).wait(10)
    assert result.ok, result
    assert result.data.read_stats["retries"] == 1
    assert line.sim.requests[sam_sim.READ_BASE] == 2


@pytest.mark.parametrize("fault", [sam_sim.SHORT, sam_sim.CHECKSUM, sam_sim.LENGTH])
def test_a_persistently_bad_line_is_link_error(line, online, fault):
    line.sim.insert(SimCard(card_text()))
    reader = online(**QUIET)
    line.sim.fail(sam_sim.SELECT, fault, times=None)
    result = reader.read_identity(5).wait(10)
    assert (result.completion, result.error_code) == (Completion.HARDWARE_ERROR,
                                                      IdentityError.LINK_ERROR)
    assert line.sim.faults_sent[fault] == reader.retries + 1
    assert reader.status().state is DeviceState.ONLINE  # the line, not the reader, failed


def test_a_silent_sam_is_no_device_until_it_answers_again(line, online):
    line.sim.insert(SimCard(card_text()))
    reader = online(**FAST)
    events = Events(reader)
    line.sim.fail(sam_sim.READ_BASE, sam_sim.SILENCE, times=None)
    result = reader.read_identity(5).wait(10)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY,
                                                      IdentityError.NO_DEVICE)
    assert events.count(EventKind.DETACHED) == 1
    # The port is still there and the SAM answers its status: the driver reattaches.
    assert events.wait(EventKind.ATTACHED)
    assert wait_until(lambda: reader.status().state is DeviceState.ONLINE)
    line.sim.heal()
    line.sim.remove()
    line.sim.insert(SimCard(card_text()))
    assert reader.read_identity(5).wait(10).ok


# -- SAM health ---------------------------------------------------------------------------
def test_sam_fault_at_start_then_recovery(line, make_reader):
    line.sim.sam_status = 0x60
    reader = make_reader(**FAST)
    events = Events(reader)
    assert wait_until(lambda: reader.status().state is DeviceState.HARDWARE_ERROR)
    assert reader.status().detail["sam"] == "fault"
    assert reader.status().detail["samStatus"] == "0x60"
    assert reader.status().last_error == (Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE)
    result = reader.read_identity(2).wait(5)
    assert (result.completion, result.error_code) == (Completion.HARDWARE_ERROR,
                                                      IdentityError.SAM_FAILURE)
    line.sim.sam_status = 0x90
    assert wait_until(lambda: reader.status().state is DeviceState.ONLINE)
    assert reader.status().detail["sam"] == "ok" and "samStatus" not in reader.status().detail
    line.sim.insert(SimCard(card_text()))
    assert reader.read_identity(5).wait(10).ok
    assert EventKind.ATTACHED not in events.kinds()  # it was never away


def test_sam_fault_while_idle_raises_an_alarm(line, online):
    reader = online()
    events = Events(reader)
    line.sim.sam_status = 0x60
    assert wait_until(lambda: reader.status().state is DeviceState.HARDWARE_ERROR)
    errors = [e for e in events.items if e.kind is EventKind.ERROR]
    assert [(e.error_kind, e.action) for e in errors] == [(IdentityError.SAM_FAILURE, "status")]


# -- presence polling ---------------------------------------------------------------------
def test_polling_reports_insert_and_remove(line, online):
    reader = online()
    events = Events(reader)
    assert wait_until(lambda: reader.status().media is MediaState.NOT_PRESENT)
    line.sim.insert(SimCard(card_text()))
    assert events.wait(EventKind.MEDIA_INSERTED)
    assert reader.status().media is MediaState.PRESENT
    line.sim.remove()
    assert events.wait(EventKind.MEDIA_REMOVED)
    assert reader.status().media is MediaState.NOT_PRESENT
    assert events.count(EventKind.MEDIA_INSERTED) == 1


def test_a_card_left_on_the_reader_after_a_read_is_not_reported_removed(line, online):
    line.sim.insert(SimCard(card_text()))
    reader = online()
    events = Events(reader)
    assert reader.read_identity(5).wait(10).ok
    # The SAM now answers find-card with "no card" although the card lies there.
    probes = line.sim.requests[sam_sim.READ_APPENDIX]
    assert line.sim.wait_requests(sam_sim.READ_APPENDIX, probes + 5)
    assert events.count(EventKind.MEDIA_REMOVED) == 0
    assert reader.status().media is MediaState.PRESENT
    # A second read of the same card without lifting it works too.
    again = reader.read_identity(5).wait(10)
    assert again.ok and again.data.id_number == ID_NUMBER
    line.sim.remove()
    assert events.wait(EventKind.MEDIA_REMOVED)
    assert reader.status().media is MediaState.NOT_PRESENT
    # Put back: found again.
    line.sim.insert(SimCard(card_text()))
    assert events.wait(EventKind.MEDIA_INSERTED)
    assert events.count(EventKind.MEDIA_REMOVED) == 1


# -- unplug and replug --------------------------------------------------------------------
def test_unplugged_reader_comes_back_without_a_restart(line, online):
    line.sim.insert(SimCard(card_text()))
    reader = online()
    events = Events(reader)
    assert reader.read_identity(5).wait(10).ok

    line.unplug()
    assert events.wait(EventKind.DETACHED)
    assert reader.status().state is DeviceState.NO_DEVICE
    result = reader.read_identity(2).wait(5)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY,
                                                      IdentityError.NO_DEVICE)

    sim = line.replug()  # a new pty behind the same path, the card still on it
    assert events.wait(EventKind.ATTACHED)
    assert wait_until(lambda: reader.status().state is DeviceState.ONLINE)
    result = reader.read_identity(5).wait(10)
    assert result.ok and result.data.id_number == ID_NUMBER
    assert sim.requests[sam_sim.READ_BASE] == 1
    assert events.count(EventKind.DETACHED) == 1 and events.count(EventKind.ATTACHED) == 1


def test_absent_port_at_start_does_not_block(tmp_path, make_reader):
    late = tmp_path / "ttyLATE"
    reader = make_reader(port=str(late), **FAST)
    events = Events(reader)
    assert wait_until(lambda: reader.status().state is DeviceState.NO_DEVICE)
    result = reader.read_identity(1).wait(5)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY,
                                                      IdentityError.NO_DEVICE)
    assert events.count(EventKind.DETACHED) == 0  # it was never there
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    sam_line = SamLine(adapter)
    try:
        late.symlink_to(sam_line.path)
        assert events.wait(EventKind.ATTACHED)
        assert wait_until(lambda: reader.status().state is DeviceState.ONLINE)
    finally:
        reader.close()
        sam_line.close()


# -- photo --------------------------------------------------------------------------------
def test_photo_with_the_plugin(line, online, plugin):
    line.sim.insert(SimCard(card_text(), wlt(0x12, 0x34)))
    reader = online(photo_decoder=str(plugin))
    assert "photo" in reader.capabilities().features
    doc = reader.read_identity(5).wait(10).data
    assert doc.photo_status is PhotoStatus.AVAILABLE
    with Image.open(io.BytesIO(doc.photo)) as image:
        assert image.format == "PNG" and image.size == (2, 2)
        # The plug-in's colour is made of what crossed the ABI: 1024 & 0xFF, wlt[1], wlt[0].
        assert image.convert("RGB").getpixel((0, 0)) == (0x00, 0x34, 0x12)


@pytest.mark.parametrize("first_byte", [0xEE, 0xEF])  # decoder error / not an image
def test_a_failing_plugin_leaves_the_photo_unavailable(line, online, plugin, first_byte):
    line.sim.insert(SimCard(card_text(), wlt(first_byte)))
    doc = online(photo_decoder=str(plugin)).read_identity(5).wait(10).data
    assert doc.photo is None and doc.photo_status is PhotoStatus.UNAVAILABLE


def test_bad_plugin_paths_fail_at_construction(tmp_path):
    missing = tmp_path / "nope.so"
    with pytest.raises(ValueError, match="nope.so"):
        Ga467IdCardReader(port=str(tmp_path / "tty"), photo_decoder=str(missing))
    not_a_library = tmp_path / "text.so"
    not_a_library.write_text("hello")
    with pytest.raises(ValueError, match="text.so"):
        Ga467IdCardReader(port=str(tmp_path / "tty"), photo_decoder=str(not_a_library))
    source = tmp_path / "other.c"
    source.write_text("int something_else(void) { return 0; }\n")
    other = tmp_path / "libother.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(other), str(source)], check=True)
    with pytest.raises(ValueError, match="zizhu_wlt_decode"):
        Ga467IdCardReader(port=str(tmp_path / "tty"), photo_decoder=str(other))


@pytest.mark.parametrize("options", [{"baudrate": 0}, {"retries": -1},
                                     {"poll_interval_s": 0}, {"response_timeout_s": -1}])
def test_nonsense_options_are_rejected(tmp_path, options):
    with pytest.raises(ValueError):
        Ga467IdCardReader(port=str(tmp_path / "tty"), **options)


# -- privacy ------------------------------------------------------------------------------
def test_no_personal_data_in_logs(line, online, caplog):
    line.sim.insert(SimCard(card_text()))
    with caplog.at_level(logging.DEBUG):
        reader = online(**FAST)
        line.sim.fail(sam_sim.READ_BASE, sam_sim.CHECKSUM)
        result = reader.read_identity(5).wait(10)
        assert result.ok
        logged = caplog.text + repr(result.data) + repr(result)
    for secret in (NAME, ADDRESS, ID_NUMBER, ID_NUMBER[6:14]):
        assert secret not in logged


def test_close_releases_the_port_for_good(line, online):
    reader = online()
    reader.close()
    assert reader.status().state is DeviceState.OFFLINE
    result = reader.read_identity(1).wait(5)
    assert result.completion is Completion.DEVICE_NOT_READY
    # Nobody holds the pty any more: another driver can open it (pyserial exclusive lock).
    other = online()
    assert other.status().state is DeviceState.ONLINE
