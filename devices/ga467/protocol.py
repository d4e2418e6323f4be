"""The serial protocol between a terminal and the ID-card security module (SAM, GA/T 467).

Every frame, either way::

    AA AA AA 96 69 | LEN_HI LEN_LO | payload ... | CHK

``LEN`` (big endian) counts everything after it, the checksum included; ``CHK`` is the XOR of
every byte after the preamble (both length bytes included) up to the byte before it.
A request's payload is ``CMD PARA data``; a response's is ``SW1 SW2 SW3 data``, where SW3
says how the command went (SW1 and SW2 are zero in practice and not interpreted).

Everything about the wire is in this module: the frame codec, the command table with each
command's answer time, and what each status byte means to the driver. The transport
(``link``) and the driver (``reader``) only use it.
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass
from functools import reduce

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
_HEADER = len(PREAMBLE) + 2  # preamble + length
# Shortest LEN: a request's CMD PARA + checksum (a response needs SW1-3 + checksum).
MIN_LENGTH = 3
# The largest answer is base information with fingerprints (30 10): 2314; anything much
# bigger is a corrupt length field, and waiting for it would stall the line.
MAX_LENGTH = 4096


# -- errors ---------------------------------------------------------------------------------
class FrameError(Exception):
    """A frame could not be read off the line. Messages carry sizes and codes, never data."""


class ShortFrame(FrameError):
    """A frame started but its bytes stopped before the length it announced."""


class BadChecksum(FrameError):
    """The XOR over the frame does not match its checksum byte."""


class BadLength(FrameError):
    """The length field is impossible, or a payload is too short for what it must hold."""


class FrameTimeout(FrameError):
    """Nothing at all arrived before the deadline: the SAM is silent."""


class LineNoise(FrameError):
    """Bytes arrived before the deadline but none of them started a frame."""


class BadPayload(FrameError):
    """A well-framed answer whose content does not have the shape the command promises."""


# -- checksum and encoding ------------------------------------------------------------------
def checksum(data: bytes) -> int:
    """XOR of ``data`` (the bytes after the preamble, up to the checksum)."""
    return reduce(operator.xor, data, 0)


def _frame(payload: bytes) -> bytes:
    length = len(payload) + 1
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a frame")
    body = length.to_bytes(2, "big") + payload
    return PREAMBLE + body + bytes([checksum(body)])


def encode_request(command: Command, data: bytes = b"") -> bytes:
    """``AA AA AA 96 69 00 03 20 01 22`` for find-card."""
    return _frame(bytes([command.code, command.param]) + data)


def encode_response(sw1: int, sw2: int, sw3: int, data: bytes = b"") -> bytes:
    """A SAM's answer; the driver never sends one, tests and simulators do."""
    return _frame(bytes([sw1, sw2, sw3]) + data)


@dataclass(frozen=True)
class Response:
    sw1: int
    sw2: int
    sw3: int
    data: bytes

    def __repr__(self) -> str:  # the data may be a citizen's record: sizes only
        return f"Response(sw3=0x{self.sw3:02X}, {len(self.data)} data bytes)"


def decode_response(payload: bytes) -> Response:
    """A response payload (what ``FrameDecoder`` returns) as status bytes and data."""
    if len(payload) < 3:
        raise BadLength(f"response payload of {len(payload)} bytes has no status")
    return Response(payload[0], payload[1], payload[2], bytes(payload[3:]))


class FrameDecoder:
    """Cuts frames out of a byte stream, resynchronising on the preamble.

    Bytes before a preamble are dropped and counted in ``discarded``. After a bad length or
    checksum only the first byte of that preamble is dropped, so a good frame that started
    inside the bad one's announced length is still found.
    """

    def __init__(self, max_length: int = MAX_LENGTH) -> None:
        self._buf = bytearray()
        self._max_length = max_length
        self.discarded = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def reset(self) -> None:
        self._buf.clear()
        self.discarded = 0

    @property
    def pending(self) -> bool:
        """True when a frame has started and is not complete yet."""
        return self._buf.startswith(PREAMBLE)

    def next_payload(self) -> bytes | None:
        """The next complete frame's payload, None if none is complete yet.

        Raises ``BadLength`` / ``BadChecksum`` for a bad frame at the head; the decoder has
        already skipped past it, so calling again continues with the bytes after.
        """
        self._skip_to_preamble()
        if len(self._buf) < _HEADER:
            return None
        length = int.from_bytes(self._buf[5:7], "big")
        if not MIN_LENGTH <= length <= self._max_length:
            self._drop(1)
            raise BadLength(f"frame length field {length}")
        end = _HEADER + length
        if len(self._buf) < end:
            return None
        frame = bytes(self._buf[:end])
        if checksum(frame[5:-1]) != frame[-1]:
            self._drop(1)
            raise BadChecksum(f"checksum mismatch in a {end}-byte frame")
        del self._buf[:end]
        return frame[_HEADER:-1]

    def _skip_to_preamble(self) -> None:
        start = self._buf.find(PREAMBLE)
        if start < 0:
            # Keep a tail that may be the first bytes of a preamble still arriving.
            keep = next((n for n in range(min(len(PREAMBLE) - 1, len(self._buf)), 0, -1)
                         if self._buf.endswith(PREAMBLE[:n])), 0)
            self._drop(len(self._buf) - keep)
        elif start > 0:
            self._drop(start)

    def _drop(self, count: int) -> None:
        del self._buf[:count]
        self.discarded += count


# -- commands -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    name: str
    code: int
    param: int
    # How much longer than a plain answer the SAM may take: reading the card means RF
    # exchanges with the chip and decryption inside the SAM.
    time_factor: float = 1.0
    # The largest answer expected, to add its time on the wire at the line's baud rate.
    answer_bytes: int = 16

    def timeout_s(self, response_timeout_s: float, baudrate: int) -> float:
        wire = (_HEADER + 1 + self.answer_bytes) * 10 / baudrate  # 8N1: ten bits per byte
        return response_timeout_s * self.time_factor + wire


SAM_STATUS = Command("samStatus", 0x11, 0xFF)           # 读SAM状态
SAM_ID = Command("samId", 0x12, 0xFF, answer_bytes=19)  # 读SAM管理信息 (SAM 编号)
FIND_CARD = Command("findCard", 0x20, 0x01)             # 寻找证/卡
SELECT_CARD = Command("selectCard", 0x20, 0x02)         # 选取证/卡
# 读固定信息: 2 + 2 length bytes, 256 bytes of text, 1024 bytes of WLT photo.
READ_BASE = Command("readBase", 0x30, 0x01, time_factor=3.0, answer_bytes=3 + 4 + 256 + 1024)
# 读追加住址: used only to tell whether a card that was just read is still on the reader.
READ_APPENDIX = Command("readAppendix", 0x30, 0x03, time_factor=2.0, answer_bytes=3 + 70)

TEXT_LENGTH = 256
PHOTO_LENGTH = 1024


def split_base_info(data: bytes) -> tuple[bytes, bytes]:
    """The text and WLT photo of a read-base answer, checked against their length fields."""
    if len(data) < 4:
        raise BadPayload(f"base information of {len(data)} bytes has no length fields")
    text_len = int.from_bytes(data[0:2], "big")
    photo_len = int.from_bytes(data[2:4], "big")
    if text_len != TEXT_LENGTH or len(data) != 4 + text_len + photo_len:
        raise BadPayload(f"base information lengths {text_len}+{photo_len} in {len(data)} bytes")
    return data[4:4 + text_len], data[4 + text_len:]


# -- status ---------------------------------------------------------------------------------
class Outcome(enum.Enum):
    """What a status byte means to the driver."""

    SUCCESS = "success"
    CARD_FOUND = "cardFound"
    NO_CONTENT = "noContent"          # the card has no such item (e.g. no appended address)
    NO_CARD = "noCard"
    SELECT_FAILED = "selectFailed"
    READ_FAILED = "readFailed"
    CARD_REJECTED = "cardRejected"    # a card the SAM will not accept as a genuine ID card
    LINE_FAULT = "lineFault"          # the SAM received our frame damaged: resend
    SAM_FAULT = "samFault"            # the SAM or the command is at fault


SW3_SUCCESS = 0x90
SW3_CARD_FOUND = 0x9F
SW3_NO_CONTENT = 0x91
SW3_NO_CARD = 0x80
SW3_SELECT_FAILED = 0x81
SW3_READ_FAILED = 0x41

# SW3 values as GA/T 467 names them; the English goes to logs and status detail.
STATUS_TEXT: dict[int, str] = {
    0x90: "success",                          # 操作成功
    0x91: "no such item on the card",         # 证/卡中此项无内容
    0x9F: "card found",                       # 寻找证/卡成功
    0x10: "SAM received a bad checksum",      # 接收业务终端数据的校验和错
    0x11: "SAM received a bad length",        # 接收业务终端数据的长度错
    0x21: "command not accepted",             # 接收业务终端的命令错误
    0x23: "operation not permitted",          # 越权操作
    0x24: "unidentified error",               # 无法识别的错误
    0x31: "card rejected the SAM",            # 证/卡认证机具失败
    0x32: "SAM rejected the card",            # 机具认证证/卡失败
    0x33: "information check failed",         # 信息验证错误
    0x40: "unknown card type",                # 无法识别的卡类型
    0x41: "card read failed",                 # 读证/卡操作失败
    0x47: "random number failed",             # 取随机数失败
    0x60: "SAM self-test failed",             # SAM 自检失败，不能接收命令
    0x66: "SAM not authorised",               # SAM 没经过授权，无法使用
    0x80: "no card / find failed",            # 寻找证/卡失败
    0x81: "select failed",                    # 选取证/卡失败
}

_OUTCOMES: dict[int, Outcome] = {
    SW3_SUCCESS: Outcome.SUCCESS,
    SW3_CARD_FOUND: Outcome.CARD_FOUND,
    SW3_NO_CONTENT: Outcome.NO_CONTENT,
    SW3_NO_CARD: Outcome.NO_CARD,
    SW3_SELECT_FAILED: Outcome.SELECT_FAILED,
    SW3_READ_FAILED: Outcome.READ_FAILED,
    # The SAM could not authenticate the chip, or does not know the card type: the card
    # is at fault (forged, damaged, another kind of card), not the reader.
    0x32: Outcome.CARD_REJECTED,
    0x33: Outcome.CARD_REJECTED,
    0x40: Outcome.CARD_REJECTED,
    # The SAM got our request damaged: a line problem that a resend cures when transient.
    0x10: Outcome.LINE_FAULT,
    0x11: Outcome.LINE_FAULT,
}


def outcome(sw3: int) -> Outcome:
    """Anything not listed (0x21, 0x23, 0x24, 0x31, 0x47, 0x60, 0x66, unknown values) is a
    SAM or command fault: the reader needs attention, the citizen's card is not to blame."""
    return _OUTCOMES.get(sw3, Outcome.SAM_FAULT)


def describe(sw3: int) -> str:
    return f"0x{sw3:02X} {STATUS_TEXT.get(sw3, 'unknown status')}"


def format_sam_id(data: bytes) -> str:
    """The SAM number as vendor tools print it (``05.01-20101010-0000123456-0123456789``):
    two 16-bit and three 32-bit little-endian fields. Other lengths come back as hex."""
    if len(data) != 16:
        return data.hex()
    a, b = int.from_bytes(data[0:2], "little"), int.from_bytes(data[2:4], "little")
    c, d, e = (int.from_bytes(data[i:i + 4], "little") for i in (4, 8, 12))
    return f"{a:02d}.{b:02d}-{c:08d}-{d:010d}-{e:010d}"
