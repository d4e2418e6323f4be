"""The ``pcsc`` eMRTD driver end to end through the real PC/SC stack: pyscard -> pcscd -> the
vpcd virtual reader -> a simulated passport chip (tests/emrtd/card.py) that enforces BAC and
secure messaging, serving a passport signed by a test PKI (tests/emrtd/factory.py)."""

from __future__ import annotations

import io
import threading
from datetime import date

import pytest
from PIL import Image

from devices.contract import Completion, DeviceState, EventKind, MediaState
from devices.emrtd.files import EF
from devices.emrtd.mrz import parse_mrz
from devices.emrtd.reader import PcscEmrtdReader
from devices.identity import Authenticity, DocumentType, IdentityError, MrzAccess, PhotoStatus
from tests.emrtd.card import SimulatedEmrtd
from tests.emrtd.factory import (
    SPECIMEN_TD3,
    make_face_jpeg,
    make_passport,
    make_test_pki,
    permit_td1,
    tampered,
)

ACCESS = parse_mrz("\n".join(SPECIMEN_TD3)).access()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def passport(pki):
    return make_passport(pki, SPECIMEN_TD3, make_face_jpeg(20_000))


@pytest.fixture
def reader(pcscd):
    device = PcscEmrtdReader(reader=pcscd.reader)
    _wait(lambda: device.status().state is DeviceState.ONLINE, "reader attached")
    yield device
    device.close()


def _wait(predicate, what: str, timeout: float = 10) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        done.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def chip(passport, **options) -> SimulatedEmrtd:
    """A chip that takes extended-length reads of up to 32 KB unless told otherwise."""
    return SimulatedEmrtd(dict(passport.files), ACCESS, **{"max_read": 0x8000, **options})


def test_reads_and_verifies_a_passport_against_its_csca(pcscd, vpcd_card_factory, passport,
                                                        pki):
    device = PcscEmrtdReader(reader=pcscd.reader, csca=str(pki.csca_path))
    try:
        _wait(lambda: device.status().state is DeviceState.ONLINE, "reader attached")
        vpcd_card_factory(chip(passport))
        result = device.read_identity(20, ACCESS).wait(30)
    finally:
        device.close()
    assert result.ok, result
    document = result.data
    assert document.document_type is DocumentType.PASSPORT
    assert document.id_number == "L898902C3"
    assert document.name == "ERIKSSON ANNA MARIA"
    assert (document.birth_date, document.valid_until) == (date(1974, 8, 12), date(2012, 4, 15))
    assert (document.nationality, document.gender) == ("UTO", "F")
    assert document.authenticity is Authenticity.VERIFIED
    assert document.photo_status is PhotoStatus.AVAILABLE
    face = Image.open(io.BytesIO(document.photo))
    assert face.size == (360, 480)
    # Extended-length reads through pcscd+vpcd: the 20 KB face in one READ BINARY after its
    # 4-byte header, so SELECT AID + GET CHALLENGE + MUTUAL AUTH + 4 files x 3 APDUs.
    assert document.read_stats["apdus"] == 3 + 4 * 3
    assert "1974" not in repr(document) and "ERIKSSON" not in repr(document)


def test_without_a_trust_anchor_it_is_never_verified(reader, vpcd_card_factory, passport):
    vpcd_card_factory(chip(passport))
    result = reader.read_identity(20, ACCESS).wait(30)
    assert result.ok
    assert result.data.authenticity is Authenticity.NOT_VERIFIED
    assert "no CSCA" in result.data.authenticity_detail


def test_a_tampered_chip_fails_passive_authentication(reader, vpcd_card_factory, passport):
    vpcd_card_factory(chip(tampered(passport)))
    result = reader.read_identity(20, ACCESS).wait(30)
    assert result.ok  # read fine; the flow refuses it on authenticity
    assert result.data.authenticity is Authenticity.FAILED
    assert "DG1" in result.data.authenticity_detail


def test_short_reads_when_the_chip_has_no_extended_length(reader, vpcd_card_factory, passport):
    vpcd_card_factory(chip(passport, extended_length=False, max_read=0xE7))
    result = reader.read_identity(20, ACCESS).wait(30)
    assert result.ok
    sizes = {ef: len(passport.files[ef]) for ef in (EF.COM, EF.DG1, EF.DG2, EF.SOD)}
    assert result.data.read_stats["readSize"] == 0xE7
    # One refused extended probe, then each file: SELECT, its header, ceil(rest / 0xE7).
    expected = 3 + 1 + sum(2 + -(-(size - 4) // 0xE7) for size in sizes.values())
    assert result.data.read_stats["apdus"] == expected


def test_a_travel_permit_card(reader, vpcd_card_factory, pki):
    lines = permit_td1()
    permit = make_passport(pki, lines, make_face_jpeg(8_000))
    access = parse_mrz("\n".join(lines)).access()
    vpcd_card_factory(SimulatedEmrtd(dict(permit.files), access))
    result = reader.read_identity(20, access).wait(30)
    assert result.ok
    assert result.data.document_type is DocumentType.TRAVEL_PERMIT


def test_wrong_mrz_is_security_fail(reader, vpcd_card_factory, passport):
    vpcd_card_factory(chip(passport))
    wrong = MrzAccess(ACCESS.document_number, ACCESS.birth_date, "130415")
    result = reader.read_identity(20, wrong).wait(30)
    assert (result.completion, result.error_code) == (Completion.USER_ERROR,
                                                      IdentityError.SECURITY_FAIL)


def test_a_bad_response_mac_is_its_own_failure(reader, vpcd_card_factory, passport):
    card = chip(passport)
    card.corrupt_next_mac()  # the first protected answer (SELECT EF.COM) after BAC
    vpcd_card_factory(card)
    result = reader.read_identity(20, ACCESS).wait(30)
    assert (result.completion, result.error_code) == (Completion.INVALID_DATA,
                                                      IdentityError.SM_MAC_FAILURE)


def test_card_removed_mid_read(reader, vpcd_card_factory, passport):
    client = vpcd_card_factory(chip(passport, extended_length=False))
    client.remove_after(12)  # BAC done, in the middle of DG2
    result = reader.read_identity(20, ACCESS).wait(30)
    assert (result.completion, result.error_code) == (Completion.USER_ERROR,
                                                      IdentityError.MEDIA_REMOVED)


class NotAPassport:
    atr = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")

    def process(self, apdu: bytes) -> bytes:
        return bytes.fromhex("6A82")


def test_an_unknown_card_is_invalid_media(reader, vpcd_card_factory):
    vpcd_card_factory(NotAPassport())
    events = []
    reader.subscribe(events.append)
    result = reader.read_identity(20, ACCESS).wait(30)
    assert (result.completion, result.error_code) == (Completion.INVALID_DATA,
                                                      IdentityError.INVALID_MEDIA)
    assert EventKind.INVALID_MEDIA in [e.kind for e in events]


def test_insert_and_remove_events_and_no_card_times_out(reader, vpcd_card_factory, passport):
    events = []
    reader.subscribe(events.append)
    result = reader.read_identity(0.5, ACCESS).wait(10)
    assert result.completion is Completion.TIME_OUT
    client = vpcd_card_factory(chip(passport))
    _wait(lambda: reader.status().media is MediaState.PRESENT, "card present")
    client.remove()
    _wait(lambda: reader.status().media is MediaState.NOT_PRESENT, "card gone")
    kinds = [e.kind for e in events]
    assert kinds.index(EventKind.MEDIA_INSERTED) < kinds.index(EventKind.MEDIA_REMOVED)


def test_a_read_without_mrz_is_refused_at_once(reader):
    result = reader.read_identity(5, None).wait(10)
    assert result.error_code == IdentityError.SECURITY_FAIL


def test_a_bad_trust_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "csca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match="csca.pem"):
        PcscEmrtdReader(csca=str(bad))
