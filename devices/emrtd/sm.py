"""3DES secure messaging after BAC (ICAO 9303 Part 11, 9.8; ISO/IEC 7816-4 SM).

A protected command carries the encrypted data in DO'87' (DO'85' for an odd INS such as
READ BINARY B1), the expected length in DO'97' and a retail MAC in DO'8E'; a protected
response carries DO'87'/'85', the status in DO'99' and DO'8E'. Both MACs run over the send
sequence counter, which steps once per command and once per response.

The chip side (``unprotect_command`` / ``protect_response``) lives here too, so the
simulated chip and the reader share one implementation and Appendix D checks both.
"""

from __future__ import annotations

from devices.emrtd.apdu import EXTENDED_MAX, SHORT_LC_MAX, SHORT_LE_MAX, SW, CommandApdu
from devices.emrtd.crypto import (
    BLOCK,
    mac_equal,
    pad,
    retail_mac,
    tdes_decrypt,
    tdes_encrypt,
    unpad,
)
from devices.emrtd.errors import SecureMessagingError
from devices.emrtd.tlv import TlvError, encode, read_tlv

TAG_CRYPTOGRAM_ODD = 0x85  # encrypted data, no padding-indicator byte (odd INS)
TAG_CRYPTOGRAM = 0x87  # padding-indicator byte 01, then encrypted data
TAG_LE = 0x97
TAG_STATUS = 0x99
TAG_MAC = 0x8E
PADDING_INDICATOR = 0x01
MAC_LEN = 8
SSC_LEN = 8
_SSC_MOD = 1 << (8 * SSC_LEN)
# DO'99' (4 bytes) and DO'8E' (10 bytes) end every protected response.
_STATUS_AND_MAC = 4 + 2 + MAC_LEN


def _length_field(n: int) -> int:
    return 1 if n < 0x80 else 1 + (n.bit_length() + 7) // 8


def protected_response_length(plain: int, *, odd: bool = False) -> int:
    """Bytes of protected response data (without SW) for ``plain`` bytes of response data."""
    if plain <= 0:
        return _STATUS_AND_MAC
    value = (plain // BLOCK + 1) * BLOCK + (0 if odd else 1)
    return 1 + _length_field(value) + value + _STATUS_AND_MAC


def max_plain_length(limit: int, *, odd: bool = False) -> int:
    """The most response data whose protected form fits ``limit`` bytes: 0xE7 (231) for a
    short Le of 256, 0xFFE7 for an extended Le of 65536."""
    n = max(0, limit - _STATUS_AND_MAC)
    while n > 0 and protected_response_length(n, odd=odd) > limit:
        n -= 1
    return n


def _le_bytes(le: int) -> bytes:
    if le <= SHORT_LE_MAX:
        return bytes((le % SHORT_LE_MAX,))
    return (le % EXTENDED_MAX).to_bytes(2, "big")


def _parse_le(value: bytes) -> int:
    if len(value) == 1:
        return value[0] or SHORT_LE_MAX
    if len(value) == 2:
        return int.from_bytes(value, "big") or EXTENDED_MAX
    if not value:
        return SHORT_LE_MAX
    raise SecureMessagingError("DO'97' is longer than two bytes", SW.SM_DATA_OBJECTS_INCORRECT)


class SecureMessaging:
    """One secure-messaging session: the session keys and the send sequence counter."""

    def __init__(self, ks_enc: bytes, ks_mac: bytes, ssc: bytes) -> None:
        if len(ks_enc) != 16 or len(ks_mac) != 16 or len(ssc) != SSC_LEN:
            raise ValueError("KS_enc and KS_mac are 16 bytes, the SSC 8")
        self._ks_enc = bytes(ks_enc)
        self._ks_mac = bytes(ks_mac)
        self._ssc = int.from_bytes(ssc, "big")

    def __repr__(self) -> str:
        return "SecureMessaging(...)"  # key material stays out of logs

    @property
    def ssc(self) -> bytes:
        return self._ssc.to_bytes(SSC_LEN, "big")

    @ssc.setter
    def ssc(self, value: bytes) -> None:
        if len(value) != SSC_LEN:
            raise ValueError("the SSC is 8 bytes")
        self._ssc = int.from_bytes(value, "big")

    def _step(self) -> bytes:
        self._ssc = (self._ssc + 1) % _SSC_MOD
        return self.ssc

    def _mac(self, ssc: bytes, message: bytes) -> bytes:
        return retail_mac(self._ks_mac, ssc + message)

    def _cryptogram(self, data: bytes, odd: bool) -> bytes:
        encrypted = tdes_encrypt(self._ks_enc, pad(data))
        if odd:
            return encode(TAG_CRYPTOGRAM_ODD, encrypted)
        return encode(TAG_CRYPTOGRAM, bytes((PADDING_INDICATOR,)) + encrypted)

    def _plain(self, tag: int, value: bytes, sw: int) -> bytes:
        if tag == TAG_CRYPTOGRAM:
            if not value or value[0] != PADDING_INDICATOR:
                raise SecureMessagingError("DO'87' lacks padding indicator 01", sw)
            value = value[1:]
        try:
            return unpad(tdes_decrypt(self._ks_enc, value))
        except ValueError:
            raise SecureMessagingError("encrypted data does not decrypt to padded data",
                                       sw) from None

    @staticmethod
    def _objects(body: bytes, sw: int) -> tuple[dict[int, bytes], bytes, bytes | None]:
        """Data objects by tag, the bytes the MAC covers (all before DO'8E') and the MAC."""
        found: dict[int, bytes] = {}
        offset = 0
        while offset < len(body):
            start = offset
            try:
                tlv, offset = read_tlv(body, offset)
            except TlvError:
                raise SecureMessagingError("protected data objects are malformed", sw) from None
            if tlv.tag == TAG_MAC:
                if offset != len(body) or len(tlv.value) != MAC_LEN:
                    raise SecureMessagingError("DO'8E' is not an 8-byte MAC at the end", sw)
                return found, body[:start], tlv.value
            if tlv.tag not in (TAG_CRYPTOGRAM, TAG_CRYPTOGRAM_ODD, TAG_LE, TAG_STATUS):
                raise SecureMessagingError(f"unexpected data object {tlv.tag:02X}", sw)
            if tlv.tag in found:
                raise SecureMessagingError(f"data object {tlv.tag:02X} repeated", sw)
            found[tlv.tag] = tlv.value
        return found, body, None

    # -- terminal side ----------------------------------------------------------------------
    def protect(self, apdu: CommandApdu) -> CommandApdu:
        """Wrap a plain command: CLA |= 0C, data into DO'87' (DO'85' for an odd INS), Le into
        DO'97', MAC into DO'8E'. The protected command is extended when its data or its
        expected protected response does not fit short length."""
        ssc = self._step()
        cla = apdu.cla | 0x0C
        header = bytes((cla, apdu.ins, apdu.p1, apdu.p2))
        odd = bool(apdu.ins & 1)
        objects = self._cryptogram(apdu.data, odd) if apdu.data else b""
        if apdu.le is not None:
            objects += encode(TAG_LE, _le_bytes(apdu.le))
        body = objects + encode(TAG_MAC, self._mac(ssc, pad(header) + objects))
        response = protected_response_length(apdu.le or 0, odd=odd)
        extended = len(body) > SHORT_LC_MAX or response > SHORT_LE_MAX
        return CommandApdu(cla, apdu.ins, apdu.p1, apdu.p2, body,
                           EXTENDED_MAX if extended else SHORT_LE_MAX)

    def unprotect(self, response: bytes) -> tuple[bytes, int]:
        """Verify and unwrap a protected response: returns (data, SW from DO'99').
        ``SecureMessagingError`` on a wrong MAC, a missing DO'99' or DO'8E', or bad
        padding; the SSC has stepped either way."""
        ssc = self._step()
        if len(response) < 2:
            raise SecureMessagingError("response shorter than a status word")
        body, outer = bytes(response[:-2]), int.from_bytes(response[-2:], "big")
        objects, covered, mac = self._objects(body, outer)
        if mac is None:
            raise SecureMessagingError("response has no DO'8E' MAC", outer)
        if TAG_STATUS not in objects or len(objects[TAG_STATUS]) != 2:
            raise SecureMessagingError("response has no DO'99' status", outer)
        if not mac_equal(self._mac(ssc, covered), mac):
            raise SecureMessagingError("response MAC does not verify", outer)
        sw = int.from_bytes(objects[TAG_STATUS], "big")
        for tag in (TAG_CRYPTOGRAM, TAG_CRYPTOGRAM_ODD):
            if tag in objects:
                return self._plain(tag, objects[tag], sw), sw
        return b"", sw

    # -- chip side ----------------------------------------------------------------------------
    def unprotect_command(self, apdu: CommandApdu) -> CommandApdu:
        """The chip unwraps a protected command into the plain one. Raises
        ``SecureMessagingError`` whose ``sw`` is 6987 (objects missing) or 6988 (wrong MAC
        or cryptogram), what the chip answers before it ends the session."""
        ssc = self._step()
        missing = SW.SM_DATA_OBJECTS_MISSING
        if apdu.cla & 0x0C != 0x0C:
            raise SecureMessagingError("command is not protected", missing)
        objects, covered, mac = self._objects(apdu.data, missing)
        if mac is None:
            raise SecureMessagingError("command has no DO'8E' MAC", missing)
        header = bytes((apdu.cla, apdu.ins, apdu.p1, apdu.p2))
        wrong = SW.SM_DATA_OBJECTS_INCORRECT
        if not mac_equal(self._mac(ssc, pad(header) + covered), mac):
            raise SecureMessagingError("command MAC does not verify", wrong)
        data = b""
        for tag in (TAG_CRYPTOGRAM, TAG_CRYPTOGRAM_ODD):
            if tag in objects:
                data = self._plain(tag, objects[tag], wrong)
        le = _parse_le(objects[TAG_LE]) if TAG_LE in objects else None
        return CommandApdu(apdu.cla & 0xF3, apdu.ins, apdu.p1, apdu.p2, data, le)

    def protect_response(self, data: bytes, sw: int, *, odd: bool = False) -> bytes:
        """The chip wraps response data and status word: DO'87'/'85', DO'99', DO'8E', SW."""
        ssc = self._step()
        objects = self._cryptogram(data, odd) if data else b""
        objects += encode(TAG_STATUS, sw.to_bytes(2, "big"))
        return objects + encode(TAG_MAC, self._mac(ssc, objects)) + sw.to_bytes(2, "big")
