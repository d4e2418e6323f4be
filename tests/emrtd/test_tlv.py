from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.emrtd.tlv import (
    Tlv,
    TlvError,
    encode,
    encode_length,
    parse_all,
    parse_one,
    read_tlv,
)


def test_one_two_and_three_byte_tags():
    assert parse_one(bytes.fromhex("0201 05")) == Tlv(0x02, b"\x05")
    assert parse_one(bytes.fromhex("5F1F 02 4142")) == Tlv(0x5F1F, b"AB")
    # 5F 81 01: the second byte has b8 set, so a third byte follows.
    assert parse_one(bytes.fromhex("5F8101 01 FF")) == Tlv(0x5F8101, b"\xff")


def test_four_byte_tag_is_refused():
    with pytest.raises(TlvError, match="longer than 3"):
        parse_one(bytes.fromhex("5F818101 00"))


@pytest.mark.parametrize(("header", "length"), [
    ("7F", 0x7F), ("8180", 0x80), ("81FF", 0xFF), ("820100", 0x100), ("83010000", 0x10000),
])
def test_length_forms(header, length):
    data = bytes.fromhex("04" + header) + bytes(length)
    tlv = parse_one(data)
    assert tlv.tag == 0x04 and len(tlv.value) == length


def test_indefinite_and_four_byte_lengths_are_refused():
    with pytest.raises(TlvError, match="indefinite"):
        parse_one(bytes.fromhex("30 80 0000"))
    with pytest.raises(TlvError, match="4 bytes"):
        parse_one(bytes.fromhex("04 84 00000001 00"))


@pytest.mark.parametrize("data", [
    "", "5F", "5F81", "04", "04 82 01", "04 05 0102", "5F1F 81",
])
def test_truncations_raise_tlv_error(data):
    with pytest.raises(TlvError):
        parse_one(bytes.fromhex(data))


def test_trailing_bytes_are_refused_unless_allowed():
    data = bytes.fromhex("0401AA 0000")
    with pytest.raises(TlvError, match="2 bytes after"):
        parse_one(data)
    assert parse_one(data, allow_trailing=True) == Tlv(0x04, b"\xaa")


def test_read_tlv_returns_the_next_offset():
    data = bytes.fromhex("0101AA 020200BB")
    first, offset = read_tlv(data)
    second, end = read_tlv(data, offset)
    assert (first.value, offset, second.value, end) == (b"\xaa", 3, b"\x00\xbb", 7)


def test_nested_templates():
    inner = encode(0x5F1F, b"MRZ") + encode(0x02, b"\x01")
    outer = parse_one(encode(0x61, inner))
    assert outer.constructed
    assert [c.tag for c in outer.children()] == [0x5F1F, 0x02]
    assert outer.require(0x5F1F).value == b"MRZ"
    assert outer.find(0x03) is None
    with pytest.raises(TlvError, match="3 missing inside 61"):
        outer.require(0x03)
    assert parse_one(encode(0x7F61, encode(0x7F60, b""))).require(0x7F60).constructed


def test_primitive_has_no_children():
    with pytest.raises(TlvError, match="primitive"):
        parse_one(encode(0x5F1F, b"\x02\x01\x00")).children()


def test_repr_hides_the_value():
    assert "SECRET" not in repr(Tlv(0x5F1F, b"SECRET"))


def test_encode_uses_the_shortest_length():
    assert encode_length(0x7F) == b"\x7f"
    assert encode_length(0x80) == b"\x81\x80"
    assert encode_length(0x1234) == b"\x82\x12\x34"
    assert encode_length(0x10000) == b"\x83\x01\x00\x00"
    with pytest.raises(ValueError):
        encode_length(1 << 24)


@given(tag=st.sampled_from([0x01, 0x30, 0x5C, 0x5F1F, 0x7F61, 0x5F8101]),
       value=st.binary(max_size=70_000))
def test_encode_then_parse_round_trips(tag, value):
    assert parse_one(encode(tag, value)) == Tlv(tag, value)


@given(st.binary(max_size=64))
def test_random_bytes_only_raise_tlv_error(data):
    try:
        objects = parse_all(data)
    except TlvError:
        return
    # Whatever parsed re-encodes to objects that parse back the same.
    assert parse_all(b"".join(o.encode() for o in objects)) == objects
