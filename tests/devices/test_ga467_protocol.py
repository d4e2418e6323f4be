"""GA/T 467 framing: encoder against published byte strings, decoder resync and errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.ga467 import protocol
from devices.ga467.protocol import (
    BadChecksum,
    BadLength,
    BadPayload,
    FrameDecoder,
    Outcome,
)

# Request frames as they appear in vendor documents and line traces.
KNOWN_REQUESTS = {
    protocol.SAM_STATUS: "AAAAAA96690003 11FF ED",
    protocol.FIND_CARD: "AAAAAA96690003 2001 22",
    protocol.SELECT_CARD: "AAAAAA96690003 2002 21",
    protocol.READ_BASE: "AAAAAA96690003 3001 32",
    protocol.SAM_ID: "AAAAAA96690003 12FF EE",
}
# find-card success answer as seen on the line.
FIND_OK = bytes.fromhex("AAAAAA9669 0008 00009F 00000000 97")


@pytest.mark.parametrize("command", list(KNOWN_REQUESTS), ids=lambda c: c.name)
def test_requests_match_the_known_bytes(command):
    assert protocol.encode_request(command) == bytes.fromhex(KNOWN_REQUESTS[command])


def test_response_encoding_matches_a_known_answer():
    assert protocol.encode_response(0, 0, 0x9F, bytes(4)) == FIND_OK


def test_decoder_returns_payload_and_status():
    decoder = FrameDecoder()
    decoder.feed(FIND_OK)
    response = protocol.decode_response(decoder.next_payload())
    assert (response.sw3, response.data) == (0x9F, bytes(4))
    assert decoder.next_payload() is None
    assert "9F" in repr(response) and "00000000" not in repr(response)


def test_decoder_waits_for_a_frame_that_arrives_in_pieces():
    decoder = FrameDecoder()
    for byte in FIND_OK[:-1]:
        decoder.feed(bytes([byte]))
        assert decoder.next_payload() is None
    assert decoder.pending
    decoder.feed(FIND_OK[-1:])
    assert decoder.next_payload() == bytes.fromhex("00009F00000000")


def test_decoder_skips_garbage_before_a_frame():
    decoder = FrameDecoder()
    garbage = bytes.fromhex("00FF13AAAA96AA9669")  # includes pieces of the preamble
    decoder.feed(garbage + FIND_OK)
    assert protocol.decode_response(decoder.next_payload()).sw3 == 0x9F
    assert decoder.discarded == len(garbage)


def test_decoder_keeps_a_preamble_split_across_reads():
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x01" + FIND_OK[:3])
    assert decoder.next_payload() is None
    decoder.feed(FIND_OK[3:])
    assert decoder.next_payload() is not None
    assert decoder.discarded == 2


def test_bad_checksum_raises_and_the_next_frame_is_still_found():
    decoder = FrameDecoder()
    corrupt = FIND_OK[:-1] + bytes([FIND_OK[-1] ^ 1])
    decoder.feed(corrupt + FIND_OK)
    with pytest.raises(BadChecksum):
        decoder.next_payload()
    assert decoder.next_payload() == bytes.fromhex("00009F00000000")


def test_truncated_frame_followed_by_a_full_one_resyncs():
    # A short frame swallows the start of the next one; the checksum then fails and the
    # decoder finds the real frame inside the bytes it had counted as the short one's.
    decoder = FrameDecoder()
    decoder.feed(FIND_OK[:9] + FIND_OK)
    with pytest.raises(BadChecksum):
        decoder.next_payload()
    assert decoder.next_payload() == bytes.fromhex("00009F00000000")


@pytest.mark.parametrize("length", [0, 1, 2, 0x1001, 0xFFFF])
def test_impossible_length_raises(length):
    decoder = FrameDecoder()
    decoder.feed(protocol.PREAMBLE + length.to_bytes(2, "big") + bytes(8))
    with pytest.raises(BadLength):
        decoder.next_payload()


def test_response_without_status_is_bad_length():
    with pytest.raises(BadLength):
        protocol.decode_response(b"\x00\x00")


@given(st.binary(max_size=64), st.binary(min_size=0, max_size=300))
def test_any_noise_then_a_frame_decodes(noise, data):
    frame = protocol.encode_response(0, 0, 0x90, data)
    decoder = FrameDecoder()
    while protocol.PREAMBLE in noise:
        noise = noise.replace(protocol.PREAMBLE, b"")
    decoder.feed(noise + frame)
    payload = None
    for _ in range(len(noise) + 2):
        try:
            payload = decoder.next_payload()
        except (BadChecksum, BadLength):
            continue  # noise that happens to end in a preamble start
        break
    assert payload == bytes([0, 0, 0x90]) + data


def test_base_info_split():
    text, photo = bytes(range(256)), bytes(1024)
    data = (256).to_bytes(2, "big") + (1024).to_bytes(2, "big") + text + photo
    assert protocol.split_base_info(data) == (text, photo)
    with pytest.raises(BadPayload):
        protocol.split_base_info(data[:-1])
    with pytest.raises(BadPayload):
        protocol.split_base_info((255).to_bytes(2, "big") + data[2:])


@pytest.mark.parametrize("sw3, expected", [
    (0x90, Outcome.SUCCESS), (0x9F, Outcome.CARD_FOUND), (0x91, Outcome.NO_CONTENT),
    (0x80, Outcome.NO_CARD), (0x81, Outcome.SELECT_FAILED), (0x41, Outcome.READ_FAILED),
    (0x32, Outcome.CARD_REJECTED), (0x33, Outcome.CARD_REJECTED),
    (0x40, Outcome.CARD_REJECTED), (0x10, Outcome.LINE_FAULT), (0x11, Outcome.LINE_FAULT),
    (0x21, Outcome.SAM_FAULT), (0x23, Outcome.SAM_FAULT), (0x24, Outcome.SAM_FAULT),
    (0x31, Outcome.SAM_FAULT), (0x47, Outcome.SAM_FAULT), (0x60, Outcome.SAM_FAULT),
    (0x66, Outcome.SAM_FAULT), (0x77, Outcome.SAM_FAULT),
])
def test_status_outcomes(sw3, expected):
    assert protocol.outcome(sw3) is expected


def test_read_takes_longer_than_find():
    assert (protocol.READ_BASE.timeout_s(1.0, 115200)
            > protocol.FIND_CARD.timeout_s(1.0, 115200) > 1.0)
    # At 9600 baud the 1295-byte answer alone needs 1.35 s on the wire.
    assert protocol.READ_BASE.timeout_s(1.0, 9600) > 3.0 + 1.3


def test_sam_id_format():
    data = ((5).to_bytes(2, "little") + (1).to_bytes(2, "little")
            + (20250101).to_bytes(4, "little") + (42).to_bytes(4, "little")
            + (1234567890).to_bytes(4, "little"))
    assert protocol.format_sam_id(data) == "05.01-20250101-0000000042-1234567890"
    assert protocol.format_sam_id(b"\x01\x02") == "0102"
