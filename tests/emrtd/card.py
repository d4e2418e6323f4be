"""A simulated eMRTD chip, card side: LDS1 application, BAC, 3DES secure messaging, SELECT EF
and READ BINARY (B0 and B1), with knobs for the ways real chips differ or fail.

It shares bac.py and sm.py with the reader (``card_answer``, ``unprotect_command``,
``protect_response``), so what it checks and produces is Appendix D byte for byte.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from devices.emrtd.apdu import SW, ApduError, CommandApdu
from devices.emrtd.bac import (
    MUTUAL_AUTH_LEN,
    RND_LEN,
    card_answer,
    derive_bac_keys,
    session_keys,
)
from devices.emrtd.errors import AccessDenied, SecureMessagingError
from devices.emrtd.files import EF, LDS1_AID
from devices.emrtd.sm import SecureMessaging, protected_response_length
from devices.emrtd.tlv import TlvError, encode, read_tlv
from devices.identity import MrzAccess

TAG_OFFSET = 0x54
TAG_DISCRETIONARY = 0x53


def contactless_atr(historical: bytes) -> bytes:
    """The ATR a PC/SC reader builds for an ISO 14443-4 card (PC/SC Part 3, 3.1.3.2.3):
    3B 8n 80 01, the historical bytes, and the check byte TCK."""
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes((tck,))


# Type B style: ATQB application data, protocol info and MBLI as the historical bytes.
DEFAULT_ATR = contactless_atr(bytes.fromhex("0000000000718100"))


@dataclass(frozen=True)
class Exchange:
    """One command as the chip saw it (unwrapped when protected) and its status word."""

    ins: int
    protected: bool
    extended: bool
    le: int | None
    sw: int


def _sw(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


def _wrapped_size(content: int) -> int:
    return len(encode(TAG_DISCRETIONARY, bytes(content)))


class SimulatedEmrtd:
    """``process(command) -> response`` is the chip. ``max_read`` is the most plain data one
    READ BINARY may ask for (more gets ``overlong_sw``: 6700, or 6Cxx with xx = max_read);
    without ``extended_length`` an extended APDU is refused while parsing (bare 6700, SSC
    untouched). ``bare_errors`` makes processing errors (6A82, 6B00, 6982) come back without
    secure messaging, as some chips do. ``withheld`` files answer READ BINARY with 6982 (as
    DG3/DG4 do without EAC). ``random`` supplies RND.IC then K.IC."""

    def __init__(self, files: Mapping[EF | int, bytes], access: MrzAccess,
                 max_read: int = 0xE7, extended_length: bool = True, atr: bytes = DEFAULT_ATR,
                 *, overlong_sw: int = SW.WRONG_LENGTH, bare_errors: bool = False,
                 withheld: Collection[EF | int] = (),
                 random: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.files = {int(ef): bytes(content) for ef, content in files.items()}
        self.withheld = {int(ef) for ef in withheld}
        self.max_read = max_read
        self.extended_length = extended_length
        self.atr = atr
        self.overlong_sw = overlong_sw
        self.bare_errors = bare_errors
        self._random = random
        self._k_enc, self._k_mac = derive_bac_keys(access)
        self.exchanges: list[Exchange] = []
        self._corrupt = False
        self.reset()

    def reset(self) -> None:
        """Power cycle: the application, challenge, SM session and current file are gone."""
        self._app = False
        self._challenge: bytes | None = None
        self._sm: SecureMessaging | None = None
        self._current: int | None = None

    @property
    def sm_active(self) -> bool:
        return self._sm is not None

    def corrupt_next_mac(self) -> None:
        """The next protected response carries a wrong MAC."""
        self._corrupt = True

    def process(self, apdu: bytes) -> bytes:
        try:
            command = CommandApdu.from_bytes(apdu)
        except ApduError:
            return _sw(SW.WRONG_LENGTH)
        if command.extended and not self.extended_length:
            self._note(command, protected=bool(command.cla & 0x0C), sw=SW.WRONG_LENGTH)
            return _sw(SW.WRONG_LENGTH)
        if command.cla & 0x0C:
            return self._process_protected(command)
        if self._sm is not None:
            # A plain command ends secure messaging (Part 11 9.8.6).
            self._sm = None
            self._note(command, protected=False, sw=SW.SM_DATA_OBJECTS_MISSING)
            return _sw(SW.SM_DATA_OBJECTS_MISSING)
        data, sw = self._plain(command)
        self._note(command, protected=False, sw=sw)
        return data + _sw(sw)

    def _note(self, command: CommandApdu, *, protected: bool, sw: int) -> None:
        self.exchanges.append(Exchange(command.ins, protected, command.extended, command.le,
                                       sw))

    # -- before BAC -----------------------------------------------------------------------
    def _plain(self, command: CommandApdu) -> tuple[bytes, int]:
        if command.ins == 0xA4 and command.p1 == 0x04:
            if command.data != LDS1_AID:
                return b"", SW.FILE_NOT_FOUND
            self.reset()
            self._app = True
            return b"", SW.OK
        if not self._app:
            return b"", SW.CONDITIONS_NOT_SATISFIED
        if command.ins == 0x84:
            if command.le != RND_LEN:
                return b"", SW.WRONG_LENGTH
            self._challenge = self._random(RND_LEN)
            return self._challenge, SW.OK
        if command.ins == 0x82:
            return self._mutual_authenticate(command)
        if command.ins in (0xA4, 0xB0, 0xB1):
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED  # the files need BAC
        return b"", SW.INS_NOT_SUPPORTED

    def _mutual_authenticate(self, command: CommandApdu) -> tuple[bytes, int]:
        rnd_ic, self._challenge = self._challenge, None
        if rnd_ic is None:
            return b"", SW.CONDITIONS_NOT_SATISFIED
        if len(command.data) != MUTUAL_AUTH_LEN:
            return b"", SW.WRONG_LENGTH
        k_ic = self._random(16)
        try:
            answer, rnd_ifd, k_ifd = card_answer(self._k_enc, self._k_mac, rnd_ic,
                                                 command.data, k_ic)
        except AccessDenied:
            return b"", SW.AUTHENTICATION_FAILED
        self._sm = SecureMessaging(*session_keys(k_ifd, k_ic, rnd_ic, rnd_ifd))
        return answer, SW.OK

    # -- under secure messaging -----------------------------------------------------------
    def _process_protected(self, command: CommandApdu) -> bytes:
        sm = self._sm
        if sm is None:
            self._note(command, protected=True, sw=SW.SM_DATA_OBJECTS_INCORRECT)
            return _sw(SW.SM_DATA_OBJECTS_INCORRECT)
        try:
            plain = sm.unprotect_command(command)
        except SecureMessagingError as exc:
            self._sm = None  # a chip drops the session on any SM error
            sw = exc.sw or SW.SM_DATA_OBJECTS_INCORRECT
            self._note(command, protected=True, sw=sw)
            return _sw(sw)
        data, sw = self._command(plain)
        odd = bool(plain.ins & 1)
        room = command.le or 0
        if data and protected_response_length(len(data), odd=odd) > room:
            data, sw = b"", SW.WRONG_LENGTH  # the protected answer would not fit its Le
        self.exchanges.append(Exchange(plain.ins, True, command.extended, plain.le, sw))
        if self.bare_errors and sw not in (SW.OK, SW.END_OF_FILE):
            return _sw(sw)  # verified the command (SSC stepped once), answers bare
        response = bytearray(sm.protect_response(data, sw, odd=odd))
        if self._corrupt:
            self._corrupt = False
            response[-3] ^= 0x01  # last MAC byte, just before SW1SW2
        return bytes(response)

    def _command(self, plain: CommandApdu) -> tuple[bytes, int]:
        if plain.ins == 0xA4:
            return self._select(plain)
        if plain.ins == 0xB0:
            if plain.p1 & 0x80:
                return b"", SW.INCORRECT_P1P2  # short-EF-id reads are not offered
            return self._read(((plain.p1 << 8) | plain.p2), plain.le, wrapped=False)
        if plain.ins == 0xB1:
            try:
                tlv, end = read_tlv(plain.data, 0)
            except TlvError:
                return b"", SW.WRONG_DATA
            if tlv.tag != TAG_OFFSET or end != len(plain.data) or not tlv.value:
                return b"", SW.WRONG_DATA
            return self._read(int.from_bytes(tlv.value, "big"), plain.le, wrapped=True)
        return b"", SW.INS_NOT_SUPPORTED

    def _select(self, plain: CommandApdu) -> tuple[bytes, int]:
        if plain.p1 == 0x04:
            return (b"", SW.OK) if plain.data == LDS1_AID else (b"", SW.FILE_NOT_FOUND)
        if plain.p1 not in (0x00, 0x02) or len(plain.data) != 2:
            return b"", SW.INCORRECT_P1P2
        fid = int.from_bytes(plain.data, "big")
        if fid not in self.files:
            return b"", SW.FILE_NOT_FOUND
        self._current = fid
        return b"", SW.OK

    def _read(self, offset: int, le: int | None, *, wrapped: bool) -> tuple[bytes, int]:
        if self._current is None:
            return b"", SW.NO_CURRENT_EF
        if self._current in self.withheld:
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED
        if le is None:
            return b"", SW.WRONG_LENGTH
        if le > self.max_read:
            if self.overlong_sw >> 8 == 0x6C and self.max_read <= 0xFF:
                return b"", 0x6C00 | self.max_read
            return b"", SW.WRONG_LENGTH
        content = self.files[self._current]
        if offset >= len(content):
            return b"", SW.WRONG_P1P2
        if not wrapped:
            data = content[offset:offset + le]
            return data, SW.OK if len(data) == le else SW.END_OF_FILE
        room = le
        while room > 0 and _wrapped_size(room) > le:
            room -= 1
        piece = content[offset:offset + room]
        sw = SW.OK if len(piece) == room else SW.END_OF_FILE
        return encode(TAG_DISCRETIONARY, piece), sw
