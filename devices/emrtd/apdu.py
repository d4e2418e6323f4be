"""ISO/IEC 7816-4 command and response APDUs, short and extended length, and the status
words an eMRTD answers with."""

from __future__ import annotations

import enum
from dataclasses import dataclass

SHORT_LC_MAX = 255
SHORT_LE_MAX = 256  # encoded as 00
EXTENDED_MAX = 65536  # Lc up to 65535; Le up to 65536, encoded as 0000


class SW(enum.IntEnum):
    """Status words (SW1SW2) the reader acts on."""

    OK = 0x9000
    END_OF_FILE = 0x6282  # fewer than Le bytes: the file ended first
    AUTHENTICATION_FAILED = 0x6300
    WRONG_LENGTH = 0x6700
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    CONDITIONS_NOT_SATISFIED = 0x6985
    NO_CURRENT_EF = 0x6986
    SM_DATA_OBJECTS_MISSING = 0x6987
    SM_DATA_OBJECTS_INCORRECT = 0x6988
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    INCORRECT_P1P2 = 0x6A86
    WRONG_P1P2 = 0x6B00  # READ BINARY: offset beyond the end of the file
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00


# 6Cxx: wrong Le, xx is the length the card can give.
SW1_WRONG_LE = 0x6C
# 61xx: more data available (T=0 GET RESPONSE); not used by contactless eMRTDs.
SW1_MORE_DATA = 0x61


class ApduError(ValueError):
    """Bytes that are not a well-formed APDU."""


@dataclass(frozen=True)
class CommandApdu:
    """A command APDU. ``le`` is None when no response data is expected, else 1..65536
    (256 and 65536 are the "as much as possible" encodings 00 and 0000). Short encoding is
    used when it can hold Lc and Le, extended otherwise."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ApduError(f"{name} must be one byte, not {value}")
        if len(self.data) >= EXTENDED_MAX:
            raise ApduError(f"command data of {len(self.data)} bytes exceeds extended Lc")
        if self.le is not None and not 1 <= self.le <= EXTENDED_MAX:
            raise ApduError(f"Le {self.le} is outside 1..{EXTENDED_MAX}")

    @property
    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    @property
    def extended(self) -> bool:
        return len(self.data) > SHORT_LC_MAX or (self.le is not None and self.le > SHORT_LE_MAX)

    def to_bytes(self) -> bytes:
        out = bytearray(self.header)
        if self.extended:
            if self.data:
                out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
            if self.le is not None:
                le = (self.le % EXTENDED_MAX).to_bytes(2, "big")
                out += le if self.data else b"\x00" + le
            return bytes(out)
        if self.data:
            out += bytes((len(self.data),)) + self.data
        if self.le is not None:
            out.append(self.le % SHORT_LE_MAX)
        return bytes(out)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CommandApdu:
        """Parse the four ISO 7816-4 cases, short or extended."""
        raw = bytes(raw)
        if len(raw) < 4:
            raise ApduError(f"a command APDU has at least 4 bytes, not {len(raw)}")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or SHORT_LE_MAX)
        if body[0] != 0:
            lc = body[0]
            if len(body) == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if len(body) == 2 + lc:
                return cls(cla, ins, p1, p2, body[1:1 + lc], body[-1] or SHORT_LE_MAX)
            raise ApduError("short Lc does not match the command length")
        # Extended length: a zero byte then two bytes of Lc or Le.
        if len(body) == 3:
            return cls(cla, ins, p1, p2, le=int.from_bytes(body[1:3], "big") or EXTENDED_MAX)
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0 or len(body) < 3 + lc:
            raise ApduError("extended Lc does not match the command length")
        data = body[3:3 + lc]
        rest = body[3 + lc:]
        if not rest:
            return cls(cla, ins, p1, p2, data)
        if len(rest) == 2:
            return cls(cla, ins, p1, p2, data, int.from_bytes(rest, "big") or EXTENDED_MAX)
        raise ApduError("extended Le must be two bytes")


@dataclass(frozen=True, repr=False)
class ResponseApdu:
    """Response data and status word. ``data`` may be personal data: repr shows its size."""

    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK

    def to_bytes(self) -> bytes:
        return bytes(self.data) + self.sw.to_bytes(2, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResponseApdu:
        if len(raw) < 2:
            raise ApduError(f"a response APDU has at least 2 bytes, not {len(raw)}")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))

    def __repr__(self) -> str:
        return f"ResponseApdu({len(self.data)} bytes, sw={self.sw:04X})"


def sw_text(sw: int) -> str:
    """``"6A82"``: the form status words take in messages and logs."""
    return f"{sw:04X}"
