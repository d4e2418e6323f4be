"""A reading session with an eMRTD chip, independent of how APDUs travel: it is given a
``transmit(command) -> response`` function (PC/SC, a simulated chip, a script).

``open`` selects the LDS1 application and runs Basic Access Control; ``read_file`` then
selects an elementary file and reads it under secure messaging: the first four bytes give
the TLV length, the rest comes in the largest pieces the chip accepts. The first long read
tries an extended-length READ BINARY; if the chip refuses (6700, 6Cxx, 6D00) the session
steps down to short reads of 0xE7 (the most a protected short response can carry), then
0xDF, and keeps what worked for the rest of the session.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from devices.emrtd.apdu import (
    SW,
    SW1_MORE_DATA,
    SW1_WRONG_LE,
    ApduError,
    CommandApdu,
    ResponseApdu,
    sw_text,
)
from devices.emrtd.bac import (
    RND_LEN,
    derive_bac_keys,
    session_keys,
    start_authentication,
    verify_card_answer,
)
from devices.emrtd.errors import (
    AccessDenied,
    CardRemoved,
    EmrtdError,
    FileNotFound,
    SecureMessagingError,
    UnknownCard,
)
from devices.emrtd.files import EF, LDS1_AID
from devices.emrtd.sm import SecureMessaging, max_plain_length
from devices.emrtd.tlv import TlvError, encode, read_length, read_tag, read_tlv
from devices.identity import MrzAccess

__all__ = [
    "AccessDenied", "CardRemoved", "EmrtdError", "EmrtdSession", "FileNotFound",
    "SecureMessagingError", "UnknownCard", "EXTENDED_READ_MAX", "SHORT_READ_MAX",
]

Transmit = Callable[[bytes], bytes]

SHORT_READ_MAX = max_plain_length(256)  # 0xE7
EXTENDED_READ_MAX = max_plain_length(65536)  # 0xFFE7
# Step-down sizes after a refused read: 0xDF is what many chips and readers settle on.
_FALLBACK_READS = (SHORT_READ_MAX, 0xDF, 0x80, 0x40, 0x20)
HEADER_READ = 4  # tag and length of the file's outer TLV (Part 10 reads 4 bytes first)
MAX_FILE_SIZE = 1 << 20  # no LDS1 file comes near; a larger length is a corrupt header
B0_MAX_OFFSET = 0x7FFF  # READ BINARY B0 carries 15 bits of offset; B1 beyond
TAG_OFFSET = 0x54
TAG_DISCRETIONARY = 0x53
_KEY_LEN = 16
# Refusals raised where the chip parses the APDU, before its secure-messaging layer: a bare
# answer with one of these means the chip's SSC did not step.
_PARSE_REFUSALS = {SW.WRONG_LENGTH, SW.INS_NOT_SUPPORTED, SW.CLA_NOT_SUPPORTED}


def _is_parse_refusal(sw: int) -> bool:
    return sw in _PARSE_REFUSALS or sw >> 8 == SW1_WRONG_LE


def _file_name(fid: int) -> str:
    try:
        return f"EF.{EF(fid).name}"
    except ValueError:
        return f"EF {fid:04X}"


def _length_field(n: int) -> int:
    return 1 if n < 0x80 else 1 + (n.bit_length() + 7) // 8


def _wrapped_size(content: int) -> int:
    """Bytes of DO'53' around ``content`` bytes (READ BINARY B1 responses)."""
    return 1 + _length_field(content) + content


class EmrtdSession:
    """One chip, one BAC session. ``transmit`` sends a raw command APDU and returns the raw
    response (data + SW1SW2); it raises ``CardRemoved`` when the card is gone.

    ``max_read`` caps the plain bytes asked for in one READ BINARY (default 0xFFE7, the most
    an extended protected response holds); pass ``SHORT_READ_MAX`` when the reader cannot
    carry extended APDUs. ``random`` supplies RND.IFD then K.IFD (tests replay Appendix D).
    """

    def __init__(self, transmit: Transmit, *, max_read: int = EXTENDED_READ_MAX,
                 random: Callable[[int], bytes] = secrets.token_bytes) -> None:
        if max_read < 1:
            raise ValueError("max_read must be positive")
        self._transmit = transmit
        self._random = random
        self._chunk = min(max_read, EXTENDED_READ_MAX)
        self._sm: SecureMessaging | None = None
        self._last_extended = False
        self.apdu_count = 0
        self.bytes_read = 0

    @property
    def is_open(self) -> bool:
        """Secure messaging is established and unbroken."""
        return self._sm is not None

    @property
    def read_size(self) -> int:
        """The largest READ BINARY the session asks for now (after any step-down)."""
        return self._chunk

    def close(self) -> None:
        """Forget the session keys (the chip forgets them when it leaves the field)."""
        self._sm = None

    # -- transport ------------------------------------------------------------------------
    def _send(self, command: bytes) -> bytes:
        self.apdu_count += 1
        return bytes(self._transmit(command))

    def _plain(self, apdu: CommandApdu) -> ResponseApdu:
        raw = self._send(apdu.to_bytes())
        try:
            return ResponseApdu.from_bytes(raw)
        except ApduError as exc:
            raise EmrtdError(f"malformed response: {exc}") from None

    def _protected(self, apdu: CommandApdu) -> tuple[bytes, int]:
        sm = self._sm
        if sm is None:
            raise EmrtdError("no secure messaging session: open() the chip first")
        before = sm.ssc
        protected = sm.protect(apdu)
        self._last_extended = protected.extended
        raw = self._send(protected.to_bytes())
        if len(raw) == 2:
            sw = int.from_bytes(raw, "big")
            if sw in (SW.SM_DATA_OBJECTS_MISSING, SW.SM_DATA_OBJECTS_INCORRECT):
                self._sm = None
                raise SecureMessagingError(f"the chip ended secure messaging ({sw_text(sw)})",
                                           sw)
            if sw >> 8 in (0x90, SW1_MORE_DATA, 0x62, 0x63):  # success and warnings
                self._sm = None
                raise SecureMessagingError(
                    f"unprotected {sw_text(sw)} to a protected command", sw)
            if _is_parse_refusal(sw):
                # Refused while parsing (an extended length it cannot take): the chip's SM
                # layer never saw the command, so its counter did not step either.
                sm.ssc = before
            # Otherwise the chip verified the command (one step) and answered a bare error,
            # as many do; a chip that counts differently fails the next MAC, never silently.
            return b"", sw
        try:
            return sm.unprotect(raw)
        except SecureMessagingError:
            self._sm = None
            raise

    # -- BAC ------------------------------------------------------------------------------
    def open(self, access: MrzAccess) -> None:
        """SELECT the LDS1 application, then BAC: GET CHALLENGE and MUTUAL AUTHENTICATE.
        ``UnknownCard`` if the application is absent, ``AccessDenied`` if the chip refuses
        the MRZ keys or its answer does not verify."""
        self._sm = None
        select = CommandApdu(0x00, 0xA4, 0x04, 0x0C, LDS1_AID)
        r = self._plain(select)
        if r.sw in (SW.SM_DATA_OBJECTS_MISSING, SW.SM_DATA_OBJECTS_INCORRECT):
            # Still in an earlier SM session (same power-up): the plain command ended it.
            r = self._plain(select)
        if r.sw != SW.OK:
            raise UnknownCard(f"no eMRTD application: SELECT answered {sw_text(r.sw)}", r.sw)
        r = self._plain(CommandApdu(0x00, 0x84, 0x00, 0x00, le=RND_LEN))
        if r.sw != SW.OK or len(r.data) != RND_LEN:
            raise EmrtdError(f"GET CHALLENGE failed ({sw_text(r.sw)}, {len(r.data)} bytes): "
                             "the chip may require PACE", r.sw)
        k_enc, k_mac = derive_bac_keys(access)
        rnd_ifd = self._random(RND_LEN)
        k_ifd = self._random(_KEY_LEN)
        auth = start_authentication(k_enc, k_mac, r.data, rnd_ifd, k_ifd)
        r = self._plain(CommandApdu(0x00, 0x82, 0x00, 0x00, auth.cmd_data,
                                    le=len(auth.cmd_data)))
        if r.sw != SW.OK:
            raise AccessDenied(f"MUTUAL AUTHENTICATE refused ({sw_text(r.sw)})", r.sw)
        k_ic = verify_card_answer(k_enc, k_mac, auth, r.data)
        self._sm = SecureMessaging(*session_keys(k_ifd, k_ic, auth.rnd_ic, rnd_ifd))

    # -- files ----------------------------------------------------------------------------
    def read_file(self, ef: EF | int) -> bytes:
        """The whole content of an elementary file of the LDS1 application."""
        fid = int(ef)
        name = _file_name(fid)
        _, sw = self._protected(CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")))
        self._check(sw, f"SELECT {name}")
        content = bytearray(self._read(0, HEADER_READ, name))
        total = self._file_size(content, name)
        if total is None:  # a tag or length longer than 4 bytes: fetch the rest of it
            content += self._read(len(content), HEADER_READ, name)
            total = self._file_size(content, name)
            if total is None:
                raise EmrtdError(f"{name} does not start with a BER-TLV header")
        while len(content) < total:
            content += self._read(len(content), total - len(content), name)
        return bytes(content[:total])

    @staticmethod
    def _file_size(head: bytearray, name: str) -> int | None:
        try:
            _, offset = read_tag(head, 0)
            length, offset = read_length(head, offset)
        except TlvError:
            if len(head) >= 2 * HEADER_READ:
                raise EmrtdError(f"{name} does not start with a BER-TLV header") from None
            return None
        if offset + length > MAX_FILE_SIZE:
            raise EmrtdError(f"{name} declares {offset + length} bytes: not an LDS file")
        return offset + length

    def _read(self, offset: int, length: int, name: str) -> bytes:
        """One READ BINARY of up to ``length`` bytes at ``offset``, stepping the read size
        down while the chip refuses it."""
        while True:
            if offset <= B0_MAX_OFFSET:
                le = min(length, self._chunk)
                apdu = CommandApdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=le)
            else:
                content = min(length, self._chunk - _length_field(self._chunk) - 1)
                if content < 1:
                    raise EmrtdError(f"read size {self._chunk} too small for READ BINARY B1")
                le = _wrapped_size(content)
                offset_bytes = offset.to_bytes((offset.bit_length() + 7) // 8, "big")
                apdu = CommandApdu(0x00, 0xB1, 0x00, 0x00, encode(TAG_OFFSET, offset_bytes),
                                   le=le)
            data, sw = self._protected(apdu)
            if sw in (SW.OK, SW.END_OF_FILE):
                if apdu.ins == 0xB1:
                    data = self._unwrap_b1(data, name)
                if not data:
                    raise EmrtdError(f"READ BINARY of {name} returned no data", sw)
                data = data[:length]
                self.bytes_read += len(data)
                return data
            if sw == SW.WRONG_LENGTH or sw >> 8 == SW1_WRONG_LE:
                self._chunk = self._smaller(le, sw, name)
                continue
            if sw in (SW.INS_NOT_SUPPORTED, SW.CLA_NOT_SUPPORTED) and self._last_extended:
                # Some chips without extended length misread its header as another INS.
                self._chunk = self._smaller(max(le, SHORT_READ_MAX + 1), sw, name)
                continue
            self._check(sw, f"READ BINARY of {name}")

    def _smaller(self, refused: int, sw: int, name: str) -> int:
        hinted = sw & 0xFF if sw >> 8 == SW1_WRONG_LE else 0
        if 0 < hinted < refused:
            return hinted
        for size in _FALLBACK_READS:
            if size < refused:
                return size
        raise EmrtdError(f"the chip refuses READ BINARY of {name} even {refused} bytes at a "
                         f"time ({sw_text(sw)})", sw)

    @staticmethod
    def _unwrap_b1(data: bytes, name: str) -> bytes:
        try:
            tlv, end = read_tlv(data, 0)
        except TlvError:
            raise EmrtdError(f"READ BINARY B1 of {name}: malformed DO'53'") from None
        if tlv.tag != TAG_DISCRETIONARY or end != len(data):
            raise EmrtdError(f"READ BINARY B1 of {name}: expected DO'53'")
        return tlv.value

    @staticmethod
    def _check(sw: int, what: str) -> None:
        if sw == SW.OK:
            return
        if sw == SW.FILE_NOT_FOUND:
            raise FileNotFound(f"{what}: no such file", sw)
        if sw == SW.SECURITY_STATUS_NOT_SATISFIED:
            raise AccessDenied(f"{what}: security status not satisfied", sw)
        raise EmrtdError(f"{what} failed with {sw_text(sw)}", sw)
