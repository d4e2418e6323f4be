"""The reading session against the simulated chip in process (transmit = card.process):
BAC, files of several sizes, read-size negotiation with exact APDU counts, and every way
the exchange can fail."""

from __future__ import annotations

import math
import os

import pytest

from devices.emrtd.apdu import SW, CommandApdu
from devices.emrtd.files import EF
from devices.emrtd.session import (
    EXTENDED_READ_MAX,
    SHORT_READ_MAX,
    AccessDenied,
    CardRemoved,
    EmrtdError,
    EmrtdSession,
    FileNotFound,
    SecureMessagingError,
    UnknownCard,
)
from devices.emrtd.sm import SecureMessaging
from devices.emrtd.tlv import encode
from devices.identity import MrzAccess
from tests.emrtd.card import DEFAULT_ATR, SimulatedEmrtd

ACCESS = MrzAccess("E12345678", "900101", "300101")
WRONG = MrzAccess("E12345678", "900101", "300102")
OPEN_APDUS = 3  # SELECT AID, GET CHALLENGE, MUTUAL AUTHENTICATE
HEADER = 4


def tlv_file(tag: int, total: int) -> bytes:
    """A file of exactly ``total`` bytes: ``tag``, a length, random content."""
    for header in (2, 3, 4, 5):
        body = total - header
        if body >= 0 and len(encode(tag, bytes(body))) == total:
            return encode(tag, os.urandom(body))
    raise AssertionError(total)


DG2_20K = tlv_file(0x75, 20 * 1024)
DG1 = tlv_file(0x61, 93)
COM = tlv_file(0x60, 22)
FILES = {EF.COM: COM, EF.DG1: DG1, EF.DG2: DG2_20K}


def file_apdus(size: int, read: int, refusals: int = 0) -> int:
    """SELECT, the 4-byte header read, the refused attempts, then the rest at ``read``."""
    return 1 + 1 + refusals + math.ceil((size - HEADER) / read)


def opened(card: SimulatedEmrtd, **kwargs: int) -> EmrtdSession:
    session = EmrtdSession(card.process, **kwargs)
    session.open(ACCESS)
    assert session.is_open
    return session


# -- reading --------------------------------------------------------------------------------
def test_reads_small_files() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    session = opened(card)
    assert session.read_file(EF.COM) == COM
    assert session.read_file(EF.DG1) == DG1
    assert session.apdu_count == OPEN_APDUS + file_apdus(22, 22) + file_apdus(93, 93)
    assert session.bytes_read == 22 + 93


def test_dg2_20k_short_reads_only_card_and_reader() -> None:
    card = SimulatedEmrtd(FILES, ACCESS, max_read=0xE7, extended_length=False)
    session = opened(card, max_read=SHORT_READ_MAX)
    assert session.read_file(EF.DG2) == DG2_20K
    # 20476 bytes after the header in reads of 231: 89 READ BINARY.
    assert session.apdu_count == OPEN_APDUS + file_apdus(20480, 0xE7) == 3 + 91
    assert session.bytes_read == 20480
    assert all(not e.extended for e in card.exchanges)


def test_dg2_20k_card_without_extended_length_is_probed_once() -> None:
    card = SimulatedEmrtd(FILES, ACCESS, max_read=0xE7, extended_length=False)
    session = opened(card)
    assert session.read_file(EF.DG2) == DG2_20K
    assert session.apdu_count == OPEN_APDUS + file_apdus(20480, 0xE7, refusals=1) == 3 + 92
    assert session.read_size == SHORT_READ_MAX
    # Remembered: the next file goes straight to short reads, no second probe.
    before = session.apdu_count
    assert session.read_file(EF.DG2) == DG2_20K
    assert session.apdu_count - before == file_apdus(20480, 0xE7) == 91


def test_dg2_20k_with_extended_length_is_one_read() -> None:
    card = SimulatedEmrtd(FILES, ACCESS, max_read=EXTENDED_READ_MAX, extended_length=True)
    session = opened(card)
    assert session.read_file(EF.DG2) == DG2_20K
    assert session.apdu_count == OPEN_APDUS + file_apdus(20480, 20476) == 3 + 3
    assert [e.extended for e in card.exchanges if e.ins == 0xB0] == [False, True]


def test_extended_card_that_caps_reads_at_0xe7_answers_6700_under_sm() -> None:
    card = SimulatedEmrtd(FILES, ACCESS, max_read=0xE7, extended_length=True)
    session = opened(card)
    assert session.read_file(EF.DG2) == DG2_20K
    assert session.apdu_count == OPEN_APDUS + file_apdus(20480, 0xE7, refusals=1)
    refused = [e for e in card.exchanges if e.sw == SW.WRONG_LENGTH]
    assert len(refused) == 1 and refused[0].protected and refused[0].extended


def test_card_limited_to_0xdf_with_6cxx() -> None:
    card = SimulatedEmrtd(FILES, ACCESS, max_read=0xDF, extended_length=False,
                          overlong_sw=0x6C00)
    session = opened(card)
    assert session.read_file(EF.DG2) == DG2_20K
    # Refused: the extended probe (bare 6700), then 0xE7 (6CDF); then reads of 0xDF.
    assert session.apdu_count == OPEN_APDUS + file_apdus(20480, 0xDF, refusals=2)
    assert session.read_size == 0xDF


def test_card_limited_to_0xdf_with_6700_steps_down_the_ladder() -> None:
    card = SimulatedEmrtd(FILES, ACCESS, max_read=0xDF, extended_length=True)
    session = opened(card)
    assert session.read_file(EF.DG2) == DG2_20K
    assert session.apdu_count == OPEN_APDUS + file_apdus(20480, 0xDF, refusals=2)


def test_medium_extended_card() -> None:
    card = SimulatedEmrtd(FILES, ACCESS, max_read=0x1000, extended_length=True,
                          overlong_sw=0x6700)
    session = opened(card, max_read=0x1000)
    assert session.read_file(EF.DG2) == DG2_20K
    assert session.apdu_count == OPEN_APDUS + file_apdus(20480, 0x1000)


def test_file_beyond_32k_uses_read_binary_b1_for_high_offsets() -> None:
    big = tlv_file(0x75, 40000)
    card = SimulatedEmrtd({EF.DG2: big}, ACCESS, max_read=0xE7, extended_length=False)
    session = opened(card, max_read=SHORT_READ_MAX)
    assert session.read_file(EF.DG2) == big
    b0 = math.ceil((0x8000 - HEADER) / 0xE7)  # B0 reads while the offset fits 15 bits
    rest = 40000 - (HEADER + b0 * 0xE7)
    b1 = math.ceil(rest / (0xE7 - 3))  # DO'53' takes 3 bytes of each B1 response
    assert [e.ins for e in card.exchanges].count(0xB0) == 1 + b0
    assert [e.ins for e in card.exchanges].count(0xB1) == b1
    assert session.apdu_count == OPEN_APDUS + 1 + 1 + b0 + b1
    assert session.bytes_read == 40000


def test_file_beyond_32k_with_extended_length() -> None:
    big = tlv_file(0x75, 40000)
    card = SimulatedEmrtd({EF.DG2: big}, ACCESS, max_read=EXTENDED_READ_MAX)
    session = opened(card)
    assert session.read_file(EF.DG2) == big
    assert session.apdu_count == OPEN_APDUS + 3


def test_file_shorter_than_the_header_read() -> None:
    tiny = bytes.fromhex("6001AA")
    session = opened(SimulatedEmrtd({EF.COM: tiny}, ACCESS))
    assert session.read_file(EF.COM) == tiny


def test_two_byte_tag_with_three_byte_length_needs_a_second_header_read() -> None:
    odd = encode(0x7F61, os.urandom(300))  # 7F61 82 012C: 5 header bytes
    session = opened(SimulatedEmrtd({EF.DG2: odd}, ACCESS))
    assert session.read_file(EF.DG2) == odd


def test_secure_messaging_is_on_for_every_file_command() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    opened(card).read_file(EF.DG1)
    file_commands = [e for e in card.exchanges if e.ins in (0xA4, 0xB0)][1:]  # after AID
    assert file_commands and all(e.protected for e in file_commands)


def test_reopening_on_the_same_chip_starts_a_new_session() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    opened(card).read_file(EF.COM)
    # The chip is still in the old SM session: it refuses the plain SELECT (6987) and
    # drops it; the session selects again.
    again = opened(card)
    assert again.apdu_count == OPEN_APDUS + 1
    assert again.read_file(EF.DG1) == DG1


# -- failures -------------------------------------------------------------------------------
def test_wrong_mrz_is_access_denied() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    session = EmrtdSession(card.process)
    with pytest.raises(AccessDenied) as err:
        session.open(WRONG)
    assert err.value.sw == SW.AUTHENTICATION_FAILED
    assert not session.is_open
    for secret in ("E12345678", "900101", "300102"):
        assert secret not in str(err.value)


def test_answer_that_does_not_verify_is_access_denied() -> None:
    def impostor(command: bytes) -> bytes:
        if command[1] == 0x84:
            return bytes(8) + b"\x90\x00"
        return (bytes(40) + b"\x90\x00") if command[1] == 0x82 else b"\x90\x00"

    session = EmrtdSession(impostor)
    with pytest.raises(AccessDenied):
        session.open(ACCESS)
    assert not session.is_open


def test_chip_refusing_get_challenge_is_not_blamed_on_the_mrz() -> None:
    def pace_only(command: bytes) -> bytes:
        return b"\x90\x00" if command[1] == 0xA4 else b"\x6d\x00"

    with pytest.raises(EmrtdError) as err:
        EmrtdSession(pace_only).open(ACCESS)
    assert not isinstance(err.value, AccessDenied)
    assert err.value.sw == 0x6D00


@pytest.mark.parametrize("sw", [b"\x6a\x82", b"\x6a\x86", b"\x6d\x00", b"\x6e\x00"])
def test_card_without_the_emrtd_application_is_unknown(sw: bytes) -> None:
    sent: list[bytes] = []

    def bank_card(command: bytes) -> bytes:
        sent.append(command)
        return sw

    with pytest.raises(UnknownCard):
        EmrtdSession(bank_card).open(ACCESS)
    assert sent == [bytes.fromhex("00A4040C07A0000002471001")]


def test_corrupt_response_mac_is_a_secure_messaging_error() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    session = opened(card)
    card.corrupt_next_mac()
    with pytest.raises(SecureMessagingError):
        session.read_file(EF.DG1)
    assert not session.is_open
    with pytest.raises(EmrtdError):
        session.read_file(EF.DG1)  # no session to read under: open again


def test_corrupt_mac_in_the_middle_of_a_long_read() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    session = opened(card, max_read=SHORT_READ_MAX)

    def transmit(command: bytes) -> bytes:
        if session.apdu_count == 20:
            card.corrupt_next_mac()
        return card.process(command)

    session._transmit = transmit  # the same session, a transport that turns bad
    with pytest.raises(SecureMessagingError):
        session.read_file(EF.DG2)


def test_missing_file_is_file_not_found_and_the_session_goes_on() -> None:
    card = SimulatedEmrtd({EF.COM: COM, EF.DG1: DG1}, ACCESS)
    session = opened(card)
    with pytest.raises(FileNotFound) as err:
        session.read_file(EF.DG2)
    assert err.value.sw == SW.FILE_NOT_FOUND
    assert "DG2" in str(err.value)
    assert session.read_file(EF.DG1) == DG1


def test_missing_file_answered_without_sm_keeps_the_counter_in_step() -> None:
    card = SimulatedEmrtd({EF.COM: COM, EF.DG1: DG1}, ACCESS, bare_errors=True)
    session = opened(card)
    with pytest.raises(FileNotFound):
        session.read_file(EF.DG2)
    assert session.read_file(EF.DG1) == DG1


def test_file_the_chip_withholds_is_access_denied() -> None:
    dg3 = 0x0103  # fingerprints: readable only after EAC, which BAC does not give
    card = SimulatedEmrtd({**FILES, dg3: tlv_file(0x63, 50)}, ACCESS, withheld={dg3})
    session = opened(card)
    with pytest.raises(AccessDenied) as err:
        session.read_file(dg3)
    assert err.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert session.read_file(EF.DG1) == DG1


def test_card_removed_propagates() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    session = opened(card)

    def pulled(command: bytes) -> bytes:
        if session.apdu_count > 10:
            raise CardRemoved("card left the field")
        return card.process(command)

    session._transmit = pulled
    with pytest.raises(CardRemoved):
        session.read_file(EF.DG2)


def test_read_before_open_is_refused() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    with pytest.raises(EmrtdError, match="open"):
        EmrtdSession(card.process).read_file(EF.COM)
    assert card.exchanges == []


# -- the simulated chip itself --------------------------------------------------------------
def test_chip_refuses_files_before_bac() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    assert card.process(bytes.fromhex("00A4040C07A0000002471001")) == b"\x90\x00"
    assert card.process(bytes.fromhex("00A4020C020101")) == b"\x69\x82"
    assert card.process(bytes.fromhex("00B0000004")) == b"\x69\x82"


def test_chip_drops_sm_on_a_plain_command_after_bac() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    session = opened(card)
    assert card.process(bytes.fromhex("00A4020C020101")) == b"\x69\x87"
    assert not card.sm_active
    with pytest.raises(SecureMessagingError) as err:
        session.read_file(EF.DG1)
    assert err.value.sw == SW.SM_DATA_OBJECTS_INCORRECT


def test_chip_drops_sm_on_a_bad_command_mac() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    session = opened(card)

    def tamper(command: bytes) -> bytes:
        return card.process(command[:-4] + bytes((command[-4] ^ 1,)) + command[-3:])

    session._transmit = tamper
    with pytest.raises(SecureMessagingError) as err:
        session.read_file(EF.DG1)
    assert err.value.sw == SW.SM_DATA_OBJECTS_INCORRECT
    assert not card.sm_active


def test_chip_read_binary_edges() -> None:
    card = SimulatedEmrtd({EF.COM: COM}, ACCESS)
    session = opened(card)
    sm: SecureMessaging = session._sm  # type: ignore[assignment]

    def ask(command: CommandApdu) -> tuple[bytes, int]:
        return sm.unprotect(card.process(sm.protect(command).to_bytes()))

    assert ask(CommandApdu(0, 0xB0, 0, 0, le=4)) == (b"", SW.NO_CURRENT_EF)
    assert ask(CommandApdu(0, 0xA4, 2, 0x0C, bytes.fromhex("011E"))) == (b"", SW.OK)
    assert ask(CommandApdu(0, 0xB0, 0, 20, le=8)) == (COM[20:], SW.END_OF_FILE)
    assert ask(CommandApdu(0, 0xB0, 0, 22, le=1)) == (b"", SW.WRONG_P1P2)
    assert ask(CommandApdu(0, 0xB0, 0, 0, le=0xE8)) == (b"", SW.WRONG_LENGTH)
    assert ask(CommandApdu(0, 0xB0, 0, 0, le=4)) == (COM[:4], SW.OK)


def test_default_atr_is_a_contactless_atr_with_a_good_check_byte() -> None:
    card = SimulatedEmrtd(FILES, ACCESS)
    assert card.atr == DEFAULT_ATR
    assert card.atr[:2] == b"\x3b\x88" and card.atr[2:4] == b"\x80\x01"
    tck = 0
    for byte in card.atr[1:]:
        tck ^= byte
    assert tck == 0
