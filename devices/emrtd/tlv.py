"""BER-TLV as ICAO 9303 uses it (ISO/IEC 7816-4 / ASN.1 BER, definite lengths only).

Tags are 1 to 3 bytes (first byte low five bits all set means "more bytes follow"); lengths
are short form (< 0x80) or 0x81, 0x82, 0x83 followed by 1 to 3 length bytes. Everything
read here came from a chip or a file, so every bound is checked and the only error is
``TlvError``; the messages name tags and offsets, never content.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

MAX_TAG_BYTES = 3
MAX_LENGTH_BYTES = 3


class TlvError(ValueError):
    """Malformed BER-TLV: truncated, indefinite length, over-long tag or length."""


@dataclass(frozen=True, repr=False)
class Tlv:
    """One data object. ``value`` may hold personal data, so repr shows only its size."""

    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        """Bit 6 of the first tag byte: the value is itself a sequence of data objects."""
        return bool(_first_tag_byte(self.tag) & 0x20)

    def children(self) -> list[Tlv]:
        """The nested data objects of a constructed tag."""
        if not self.constructed:
            raise TlvError(f"tag {self.tag:X} is primitive, it has no nested objects")
        return parse_all(self.value)

    def find(self, tag: int) -> Tlv | None:
        """The first direct child with ``tag``, or None."""
        for child in self.children():
            if child.tag == tag:
                return child
        return None

    def require(self, tag: int) -> Tlv:
        """The first direct child with ``tag``; TlvError naming both tags if absent."""
        found = self.find(tag)
        if found is None:
            raise TlvError(f"tag {tag:X} missing inside {self.tag:X}")
        return found

    def encode(self) -> bytes:
        return encode(self.tag, self.value)

    def __repr__(self) -> str:
        return f"Tlv(tag={self.tag:X}, {len(self.value)} bytes)"


def _first_tag_byte(tag: int) -> int:
    while tag > 0xFF:
        tag >>= 8
    return tag


def read_tlv(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Read one data object at ``offset``; returns it and the offset just past it."""
    tag, offset = read_tag(data, offset)
    length, offset = read_length(data, offset)
    end = offset + length
    if end > len(data):
        raise TlvError(f"tag {tag:X} declares {length} bytes, only {len(data) - offset} remain")
    return Tlv(tag, bytes(data[offset:end])), end


def read_tag(data: bytes, offset: int = 0) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError(f"tag expected at offset {offset}, data ends")
    first = data[offset]
    tag = first
    offset += 1
    if first & 0x1F == 0x1F:
        count = 1
        while True:
            if offset >= len(data):
                raise TlvError(f"multi-byte tag {tag:X} truncated")
            byte = data[offset]
            tag = (tag << 8) | byte
            offset += 1
            count += 1
            if count > MAX_TAG_BYTES:
                raise TlvError(f"tag longer than {MAX_TAG_BYTES} bytes")
            if not byte & 0x80:
                break
    return tag, offset


def read_length(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError(f"length expected at offset {offset}, data ends")
    first = data[offset]
    offset += 1
    if first < 0x80:
        return first, offset
    count = first & 0x7F
    if count == 0:
        raise TlvError("indefinite length is not allowed in ICAO 9303 data")
    if count > MAX_LENGTH_BYTES:
        raise TlvError(f"length field of {count} bytes is not supported")
    if offset + count > len(data):
        raise TlvError("length field truncated")
    return int.from_bytes(data[offset:offset + count], "big"), offset + count


def parse_all(data: bytes) -> list[Tlv]:
    """All data objects concatenated in ``data``, which must be consumed exactly."""
    return list(iter_tlv(data))


def iter_tlv(data: bytes) -> Iterator[Tlv]:
    offset = 0
    while offset < len(data):
        tlv, offset = read_tlv(data, offset)
        yield tlv


def parse_one(data: bytes, *, allow_trailing: bool = False) -> Tlv:
    """Exactly one data object. A file read from a chip may be followed by padding, which
    ``allow_trailing`` ignores."""
    tlv, end = read_tlv(data, 0)
    if end != len(data) and not allow_trailing:
        raise TlvError(f"{len(data) - end} bytes after tag {tlv.tag:X}")
    return tlv


def encode_tag(tag: int) -> bytes:
    if tag < 0:
        raise ValueError("negative tag")
    size = max(1, (tag.bit_length() + 7) // 8)
    if size > MAX_TAG_BYTES:
        raise ValueError(f"tag {tag:X} longer than {MAX_TAG_BYTES} bytes")
    return tag.to_bytes(size, "big")


def encode_length(length: int) -> bytes:
    if length < 0:
        raise ValueError("negative length")
    if length < 0x80:
        return bytes([length])
    size = (length.bit_length() + 7) // 8
    if size > MAX_LENGTH_BYTES:
        raise ValueError(f"length {length} needs more than {MAX_LENGTH_BYTES} bytes")
    return bytes([0x80 | size]) + length.to_bytes(size, "big")


def encode(tag: int, value: bytes) -> bytes:
    """DER-style encoding: the shortest length form."""
    return encode_tag(tag) + encode_length(len(value)) + bytes(value)
