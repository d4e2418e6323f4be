"""Cutting the scanner's byte stream into codes, without a port."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.serialscan.framing import Code, CodeFramer, Oversized, Undecodable, decode_code


def feed_all(framer: CodeFramer, *chunks: bytes) -> list:
    found = []
    for chunk in chunks:
        found += framer.feed(chunk)
    return found


def test_codes_end_at_the_suffix():
    framer = CodeFramer(b"\r")
    assert framer.feed(b"ONE\rTWO\rTHR") == [Code("ONE"), Code("TWO")]
    assert framer.pending == 3
    assert framer.feed(b"EE\r") == [Code("THREE")]
    assert framer.pending == 0


@pytest.mark.parametrize("suffix, stream", [
    (b"\r", b"ONE\r\nTWO\r\n"),   # a CR LF scanner read with the default CR
    (b"\n", b"ONE\r\nTWO\r\n"),   # ... and with LF
    (b"\r\n", b"ONE\r\nTWO\r\n"),
    (b"\t", b"ONE\tTWO\t"),
    (b"\r", b"ONE\r\r\rTWO\r"),   # empty lines are not scans
])
def test_line_ends_around_a_code_are_not_part_of_it(suffix, stream):
    assert feed_all(CodeFramer(suffix), stream) == [Code("ONE"), Code("TWO")]


@given(st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
                        max_size=40), max_size=6),
       st.lists(st.integers(0, 400), max_size=8))
def test_any_split_of_the_stream_gives_the_same_codes(texts, cuts):
    stream = b"".join(t.encode("utf-8") + b"\r\n" for t in texts)
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert feed_all(CodeFramer(b"\r\n"), *pieces) == [Code(t.removeprefix("\ufeff"))
                                                       for t in texts]


def test_gbk_is_tried_when_utf8_fails():
    text = "政务服务中心预约码:A-0012"
    assert decode_code(text.encode("gbk"), 2048) == Code(text)
    assert decode_code(text.encode("utf-8"), 2048) == Code(text)
    assert decode_code("\ufeffABC".encode(), 2048) == Code("ABC")


@pytest.mark.parametrize("raw", [
    b"\xff\xfe\x00\x81",           # neither UTF-8 nor GBK
    b"\x13\x37ABC",                # control characters: line noise, not a code
    b"AB\x00CD",
])
def test_noise_is_undecodable(raw):
    assert decode_code(raw, 2048) == Undecodable(len(raw))


def test_tabs_and_newlines_inside_a_code_are_kept():
    assert decode_code(b"line one\nline\ttwo", 2048) == Code("line one\nline\ttwo")


def test_a_code_over_max_chars_is_oversized():
    framer = CodeFramer(b"\r", max_chars=10)
    assert framer.feed(b"0123456789\r") == [Code("0123456789")]
    assert framer.feed(b"0123456789A\r") == [Oversized(11)]
    # Ten Chinese characters are 30 UTF-8 bytes and still ten characters.
    assert framer.feed("一二三四五六七八九十\r".encode()) == [Code("一二三四五六七八九十")]


def test_a_flood_without_suffix_is_held_in_bounded_memory():
    framer = CodeFramer(b"\r\n", max_chars=16)
    for _ in range(1000):
        assert framer.feed(b"x" * 1000) == []
    assert framer.held <= framer.max_bytes
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\nNEXT\r\n") == [Oversized(1_000_000), Code("NEXT")]


def test_a_suffix_split_across_the_overflow_is_still_found():
    framer = CodeFramer(b"\r\n", max_chars=4)
    assert framer.feed(b"y" * 100 + b"\r") == []
    assert framer.feed(b"\n") == [Oversized(100)]


def test_discarding_a_fragment_counts_its_bytes_not_stray_line_ends():
    framer = CodeFramer(b"\r")
    framer.feed(b"ABC\r\n")
    assert framer.discard_partial() == 0  # the LF of a CR LF scanner
    framer.feed(b"\x13\x37")
    assert framer.discard_partial() == 2
    assert framer.feed(b"OK\r") == [Code("OK")]


def test_a_code_repr_does_not_show_its_text():
    assert "110101" not in repr(Code("110101199003074514"))


def test_an_empty_suffix_is_refused():
    with pytest.raises(ValueError):
        CodeFramer(b"")
