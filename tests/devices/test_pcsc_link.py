"""PcscLink against the real pcscd with the vpcd virtual reader, through pyscard."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from devices.pcsc import (
    CardRemovedError,
    Disposition,
    NoCardError,
    NoReaderError,
    PcscError,
    PcscLink,
    Protocol,
    TransmitTimeout,
    choose_reader,
    find_reader,
    list_readers,
    looks_contactless,
)
from tests.peers.vpcd_card import MAX_MESSAGE, VirtualCardClient


def contactless_atr(historical: bytes) -> bytes:
    """An ATR as PC/SC part 3 builds it for an ISO 14443-4 chip: T=1 offered, with TCK."""
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


def parse(apdu: bytes) -> tuple[int, bytes, int | None]:
    """(INS, command data, Ne) of a short or extended command APDU (ISO 7816-4 5.1)."""
    body = apdu[4:]
    if not body:
        return apdu[1], b"", None
    if len(body) == 1:
        return apdu[1], b"", body[0] or 256
    if body[0] == 0 and len(body) == 3:
        return apdu[1], b"", int.from_bytes(body[1:], "big") or 65536
    if body[0] == 0:
        lc = int.from_bytes(body[1:3], "big")
        rest = body[3 + lc:]
        return apdu[1], body[3:3 + lc], (int.from_bytes(rest, "big") or 65536) if rest else None
    lc = body[0]
    rest = body[1 + lc:]
    return apdu[1], body[1:1 + lc], (rest[0] or 256) if rest else None


def pattern(n: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


class PatternCard:
    """READ BINARY (B0) answers Ne bytes of a known pattern; any other command answers the
    length of its data (2 bytes) and a checksum, so a mangled command shows."""

    atr = contactless_atr(b"\x80\x73\xc8\x21\x10")

    def __init__(self) -> None:
        self.resets = 0

    def process(self, apdu: bytes) -> bytes:
        ins, data, ne = parse(apdu)
        if ins == 0xB0:
            return pattern(ne or 0) + b"\x90\x00"
        return len(data).to_bytes(2, "big") + bytes([sum(data) & 0xFF]) + b"\x90\x00"

    def reset(self) -> None:
        self.resets += 1


class SilentCard(PatternCard):
    """Answers only once ``release`` is set: a chip that stopped talking."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def process(self, apdu: bytes) -> bytes:
        self.release.wait(10)
        return super().process(apdu)


SELECT = bytes.fromhex("00A4040C07A0000002471001")


# -- reader choice (no pcscd needed) ------------------------------------------------------

DESK = ["Generic USB Smart Card Reader 00 00",
        "ACS ACR1252 1S CL Reader [ACR1252 Dual Reader SAM] 01 00",
        "ACS ACR1252 1S CL Reader [ACR1252 Dual Reader PICC] 00 00",
        "Virtual PCD 00 00"]


def test_a_configured_name_wins_exactly_then_as_a_substring():
    assert choose_reader(DESK, "Virtual PCD 00 00") == "Virtual PCD 00 00"
    assert choose_reader(DESK, "generic usb") == "Generic USB Smart Card Reader 00 00"
    with pytest.raises(NoReaderError):
        choose_reader(DESK, "OMNIKEY")


def test_without_a_name_the_first_contactless_reader_is_chosen():
    assert choose_reader(DESK) == DESK[2]  # the PICC slot, not the SAM slot of one reader
    assert choose_reader(DESK[:2] + DESK[3:]) == "Virtual PCD 00 00"
    assert looks_contactless("HID Global OMNIKEY 5022 Smart Card Reader 00 00")
    assert not looks_contactless("Generic USB Smart Card Reader 00 00")
    with pytest.raises(NoReaderError):
        choose_reader(DESK[:1])
    with pytest.raises(NoReaderError):
        choose_reader([])


# -- against pcscd + vpcd -----------------------------------------------------------------

def test_the_vpcd_reader_is_found(pcscd):
    assert {"Virtual PCD 00 00", "Virtual PCD 00 01"} <= set(list_readers())
    assert find_reader() == "Virtual PCD 00 00"
    assert find_reader("pcd 00 01") == "Virtual PCD 00 01"


def test_connect_reads_the_atr_and_transmit_returns_the_response(pcscd, vpcd_card_factory):
    card = PatternCard()
    client = vpcd_card_factory(card)
    with PcscLink(pcscd.reader) as link:
        assert link.atr == card.atr
        assert link.protocol is Protocol.T1
        assert link.transmit(SELECT) == b"\x00\x07" + bytes([sum(SELECT[5:]) & 0xFF]) + \
            b"\x90\x00"
        assert link(bytes.fromhex("00B0000004")) == pattern(4) + b"\x90\x00"
    assert client.commands == [SELECT, bytes.fromhex("00B0000004")]
    assert not link.connected


def test_disconnect_resets_the_card_by_default(pcscd, vpcd_card_factory):
    card = PatternCard()
    vpcd_card_factory(card)
    link = PcscLink(pcscd.reader)
    link.connect()
    link.transmit(SELECT)
    link.disconnect()
    assert card.resets == 1
    with pytest.raises(PcscError):
        link.transmit(SELECT)


def test_extended_length_responses_pass_whole(pcscd, vpcd_card_factory):
    vpcd_card_factory(PatternCard())
    with PcscLink(pcscd.reader) as link:
        # 65533 data bytes + SW is the most vpcd's 2-byte length field carries.
        for size in (256, 261, 4096, MAX_MESSAGE - 2):
            le = b"\x00" + size.to_bytes(2, "big") if size > 256 else b"\x00"
            assert link.transmit(b"\x00\xb0\x00\x00" + le) == pattern(size) + b"\x90\x00"


def test_extended_length_commands_pass_whole(pcscd, vpcd_card_factory):
    client = vpcd_card_factory(PatternCard())
    sent = []
    with PcscLink(pcscd.reader) as link:
        for size in (255, 262, 4096, MAX_MESSAGE - 7):
            data = pattern(size)
            lc = bytes([size]) if size < 256 else b"\x00" + size.to_bytes(2, "big")
            sent.append(b"\x00\xd6\x00\x00" + lc + data)
            assert link.transmit(sent[-1]) == size.to_bytes(2, "big") + \
                bytes([sum(data) & 0xFF]) + b"\x90\x00"
    assert client.commands == sent


def test_a_card_pulled_mid_exchange_raises_card_removed(pcscd, vpcd_card_factory):
    client = vpcd_card_factory(PatternCard())
    link = PcscLink(pcscd.reader)
    link.connect()
    client.remove_after(1)
    assert link.transmit(SELECT).endswith(b"\x90\x00")
    with pytest.raises(CardRemovedError):
        link.transmit(bytes.fromhex("00B0000010"))
    assert client.removed.is_set()
    assert not link.connected


def test_transmit_after_removal_raises_card_removed(pcscd, vpcd_card_factory):
    client = vpcd_card_factory(PatternCard())
    link = PcscLink(pcscd.reader)
    link.connect()
    client.remove()
    pcscd.wait_for_card(present=False)
    with pytest.raises(CardRemovedError):
        link.transmit(SELECT)


def test_connect_to_an_empty_reader_raises_no_card(pcscd):
    with pytest.raises(NoCardError) as caught:
        PcscLink(pcscd.reader).connect()
    assert isinstance(caught.value, CardRemovedError)
    assert caught.value.code == 0x8010000C


def test_a_silent_card_times_out_and_the_link_connects_again(pcscd, vpcd_card_factory):
    card = SilentCard()
    vpcd_card_factory(card)
    link = PcscLink(pcscd.reader, transmit_timeout=0.3)
    link.connect()
    try:
        with pytest.raises(TransmitTimeout):
            link.transmit(SELECT)
        assert not link.connected
    finally:
        # pcscd serialises on the reader: nothing, a new SCardConnect included, gets
        # through until the abandoned exchange ends.
        card.release.set()
    link.connect()
    assert link.transmit(bytes.fromhex("00B0000002")) == pattern(2) + b"\x90\x00"
    assert card.resets == 0  # giving up on an exchange leaves the chip alone
    link.reconnect()
    assert card.resets == 1
    assert link.transmit(bytes.fromhex("00B0000001")) == pattern(1) + b"\x90\x00"
    link.disconnect(Disposition.LEAVE)


def test_pcscd_stopping_raises_no_reader(pcscd, vpcd_card_factory):
    pcscd.require_managed()
    vpcd_card_factory(PatternCard())
    link = PcscLink(pcscd.reader)
    link.connect()
    pcscd.stop()
    with pytest.raises(NoReaderError):
        link.transmit(SELECT)
    with pytest.raises(NoReaderError):
        list_readers()
    with pytest.raises(NoReaderError):
        PcscLink(pcscd.reader).connect()


def test_an_unknown_reader_raises_no_reader(pcscd):
    with pytest.raises(NoReaderError):
        PcscLink("No Such Reader 00 00").connect()


# -- the virtual card's side of the vpcd protocol, against a scripted vpcd -----------------

def test_the_virtual_card_speaks_vpcd_framing_even_split_into_pieces():
    card = PatternCard()
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = VirtualCardClient(card, port=server.getsockname()[1]).insert()
        peer, _ = server.accept()
        with peer:
            def ask(message: bytes) -> bytes:
                # vpcd writes the length and the message separately; so do we here.
                peer.sendall(struct.pack(">H", len(message)))
                peer.sendall(message)
                (length,) = struct.unpack(">H", _read(peer, 2))
                return _read(peer, length)

            assert ask(b"\x04") == card.atr
            peer.sendall(struct.pack(">H", 1) + b"\x02")  # reset: no answer expected
            assert ask(bytes.fromhex("00B0000003")) == pattern(3) + b"\x90\x00"
            client.remove_after(0)
            peer.sendall(struct.pack(">H", 5) + bytes.fromhex("00B0000003"))
            assert peer.recv(1) == b""  # removed without answering
        assert card.resets == 1
        assert client.removed.wait(2)


def _read(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf
