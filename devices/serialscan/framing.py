"""Cutting a scanner's byte stream into codes, and their bytes into text. No I/O here.

A QR scanner in serial mode sends each code's text followed by a configurable suffix: CR by
default, CR LF on many models, sometimes LF or TAB. Whatever the suffix, CR and LF around a
code are not part of it, so a CR-configured framer reading a CR LF scanner sees the LF at the
start of the next code and drops it.

The text is UTF-8 on most scanners; many sold in China send GBK (or are set to) for a code
holding Chinese, so GBK is tried when UTF-8 fails. Short GBK text can happen to be valid UTF-8
(two-byte pairs in the C2..DF / 80..BF ranges) and then reads as the wrong characters; the
kiosk's own codes are ASCII, so this touches only third-party codes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

ENCODINGS = ("utf-8", "gbk")
# UTF-8 takes at most 4 bytes a character: the byte bound that keeps a ``max_chars`` code.
_MAX_BYTES_PER_CHAR = 4
_LINE_ENDS = b"\r\n"
# Control characters a code may hold (a multi-line payload); any other is line noise.
_ALLOWED_CONTROLS = frozenset("\t\n\r")


@dataclass(frozen=True, repr=False)
class Code:
    """A complete, decoded code. Its text may be personal data: the repr shows the length."""

    text: str

    def __repr__(self) -> str:
        return f"Code({len(self.text)} characters)"


@dataclass(frozen=True)
class Oversized:
    """A code longer than allowed; only its size is kept."""

    size: int  # bytes


@dataclass(frozen=True)
class Undecodable:
    """Terminated bytes that are neither UTF-8 nor GBK text (noise, a wrong baud rate)."""

    size: int  # bytes


Scanned = Code | Oversized | Undecodable


def decode_code(raw: bytes, max_chars: int) -> Scanned:
    """The text of one code's bytes (suffix already removed)."""
    for encoding in ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        break
    else:
        return Undecodable(len(raw))
    text = text.removeprefix("\ufeff")  # a BOM some scanners put before UTF-8
    if any(unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROLS for c in text):
        return Undecodable(len(raw))
    if len(text) > max_chars:
        return Oversized(len(raw))
    return Code(text)


class CodeFramer:
    """Feed it bytes as they arrive (in any split); it returns the codes they complete."""

    def __init__(self, suffix: bytes = b"\r", max_chars: int = 2048) -> None:
        if not suffix:
            raise ValueError("the suffix must not be empty")
        if max_chars <= 0:
            raise ValueError(f"max_chars must be positive, not {max_chars}")
        self.suffix = suffix
        self.max_chars = max_chars
        self.max_bytes = max_chars * _MAX_BYTES_PER_CHAR
        self._buffer = bytearray()
        # Bytes of a code already too long, dropped while waiting for its suffix.
        self._overflow = 0

    @property
    def pending(self) -> int:
        """Bytes of an unfinished code."""
        return len(self._buffer) + self._overflow

    @property
    def held(self) -> int:
        """Bytes kept in memory: never more than ``max_bytes``."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Scanned]:
        self._buffer += data
        found: list[Scanned] = []
        while (end := self._buffer.find(self.suffix)) >= 0:
            raw = bytes(self._buffer[:end])
            del self._buffer[:end + len(self.suffix)]
            if self._overflow:
                found.append(Oversized(self._overflow + len(raw)))
                self._overflow = 0
                continue
            raw = raw.strip(_LINE_ENDS)
            if raw:  # an empty line (CR LF read as two suffixes) is not a scan
                found.append(decode_code(raw, self.max_chars))
        if len(self._buffer) > self.max_bytes:
            # Keep only what could be the start of a split suffix: memory stays bounded
            # whatever a broken or hostile device sends.
            keep = len(self.suffix) - 1
            self._overflow += len(self._buffer) - keep
            del self._buffer[:len(self._buffer) - keep]
        return found

    def discard_partial(self) -> int:
        """Drop an unfinished code (the line went quiet without a suffix); returns how many
        bytes were dropped, not counting stray CR/LF."""
        dropped = len(self._buffer.strip(_LINE_ENDS)) + self._overflow
        self._buffer.clear()
        self._overflow = 0
        return dropped

    def reset(self) -> None:
        self._buffer.clear()
        self._overflow = 0
