"""Basic Access Control (ICAO 9303 Part 11, 4.3 and 9.7): document basic access keys from the
MRZ, the mutual authentication cryptograms of both sides, and the session keys and send
sequence counter that secure messaging starts from.

Each step is its own function so Appendix D's worked example can be checked value by value;
the simulated chip uses the card-side functions, so both ends share one implementation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from devices.emrtd.crypto import (
    KDF_ENC,
    KDF_MAC,
    kdf,
    mac_equal,
    retail_mac,
    tdes_decrypt,
    tdes_encrypt,
    xor,
)
from devices.emrtd.errors import AccessDenied
from devices.emrtd.mrz import check_digit
from devices.identity import MrzAccess

__all__ = [
    "TerminalAuthentication", "card_answer", "derive_bac_keys", "kdf", "key_seed",
    "mrz_information", "session_keys", "start_authentication", "verify_card_answer",
]

RND_LEN = 8
KEY_LEN = 16
CRYPTOGRAM_LEN = 2 * RND_LEN + KEY_LEN  # S and R: 32 bytes
MAC_LEN = 8
MUTUAL_AUTH_LEN = CRYPTOGRAM_LEN + MAC_LEN  # 40 bytes, Lc and Le of MUTUAL AUTHENTICATE


def mrz_information(access: MrzAccess) -> str:
    """Document number (padded to 9 with fillers) + check digit, birth date + check digit,
    expiry date + check digit. A longer document number is used whole, its check digit
    computed over all of it."""
    number = access.document_number.ljust(9, "<")
    return (number + check_digit(number) + access.birth_date + check_digit(access.birth_date)
            + access.expiry_date + check_digit(access.expiry_date))


def key_seed(access: MrzAccess) -> bytes:
    """K_seed: the first 16 bytes of SHA-1 over the MRZ information."""
    return hashlib.sha1(mrz_information(access).encode("ascii")).digest()[:KEY_LEN]


def derive_bac_keys(access: MrzAccess) -> tuple[bytes, bytes]:
    """(K_enc, K_mac), the document basic access keys."""
    seed = key_seed(access)
    return kdf(seed, KDF_ENC), kdf(seed, KDF_MAC)


@dataclass(frozen=True, repr=False)
class TerminalAuthentication:
    """The terminal's half of mutual authentication, kept until the card answers. Holds key
    material: repr shows nothing of it."""

    rnd_ic: bytes
    rnd_ifd: bytes
    k_ifd: bytes
    e_ifd: bytes
    m_ifd: bytes

    @property
    def cmd_data(self) -> bytes:
        """The MUTUAL AUTHENTICATE command data: E_IFD || M_IFD."""
        return self.e_ifd + self.m_ifd

    def __repr__(self) -> str:
        return "TerminalAuthentication(...)"


def _mac_ok(k_mac: bytes, cryptogram: bytes, mac: bytes) -> bool:
    return mac_equal(retail_mac(k_mac, cryptogram), mac)


def start_authentication(k_enc: bytes, k_mac: bytes, rnd_ic: bytes, rnd_ifd: bytes,
                         k_ifd: bytes) -> TerminalAuthentication:
    """S = RND.IFD || RND.IC || K.IFD; E_IFD = 3DES(K_enc, S); M_IFD = MAC(K_mac, E_IFD)."""
    if len(rnd_ic) != RND_LEN or len(rnd_ifd) != RND_LEN or len(k_ifd) != KEY_LEN:
        raise ValueError("RND.IC and RND.IFD are 8 bytes, K.IFD 16")
    e_ifd = tdes_encrypt(k_enc, rnd_ifd + rnd_ic + k_ifd)
    return TerminalAuthentication(rnd_ic, rnd_ifd, k_ifd, e_ifd, retail_mac(k_mac, e_ifd))


def verify_card_answer(k_enc: bytes, k_mac: bytes, auth: TerminalAuthentication,
                       answer: bytes) -> bytes:
    """Check the card's E_IC || M_IC and return K.IC. ``AccessDenied`` if the MAC fails or
    the decrypted R = RND.IC || RND.IFD || K.IC does not echo both challenges (the answer
    was not made with our keys for this exchange)."""
    if len(answer) != MUTUAL_AUTH_LEN:
        raise AccessDenied(f"MUTUAL AUTHENTICATE answer has {len(answer)} bytes, "
                           f"not {MUTUAL_AUTH_LEN}")
    e_ic, m_ic = answer[:CRYPTOGRAM_LEN], answer[CRYPTOGRAM_LEN:]
    if not _mac_ok(k_mac, e_ic, m_ic):
        raise AccessDenied("the chip's authentication cryptogram has a wrong MAC")
    r = tdes_decrypt(k_enc, e_ic)
    if r[:RND_LEN] != auth.rnd_ic or r[RND_LEN:2 * RND_LEN] != auth.rnd_ifd:
        raise AccessDenied("the chip's cryptogram does not echo the challenges")
    return r[2 * RND_LEN:]


def card_answer(k_enc: bytes, k_mac: bytes, rnd_ic: bytes, cmd_data: bytes,
                k_ic: bytes) -> tuple[bytes, bytes, bytes]:
    """The chip's side: verify E_IFD || M_IFD against the challenge it issued and build
    E_IC || M_IC from R = RND.IC || RND.IFD || K.IC. Returns (answer, RND.IFD, K.IFD);
    ``AccessDenied`` when the terminal's keys are wrong (the chip then answers 6300)."""
    if len(cmd_data) != MUTUAL_AUTH_LEN or len(k_ic) != KEY_LEN:
        raise AccessDenied("MUTUAL AUTHENTICATE data is not 40 bytes")
    e_ifd, m_ifd = cmd_data[:CRYPTOGRAM_LEN], cmd_data[CRYPTOGRAM_LEN:]
    if not _mac_ok(k_mac, e_ifd, m_ifd):
        raise AccessDenied("terminal cryptogram has a wrong MAC")
    s = tdes_decrypt(k_enc, e_ifd)
    rnd_ifd, echoed, k_ifd = s[:RND_LEN], s[RND_LEN:2 * RND_LEN], s[2 * RND_LEN:]
    if not mac_equal(echoed, rnd_ic):
        raise AccessDenied("terminal cryptogram does not echo the challenge")
    e_ic = tdes_encrypt(k_enc, rnd_ic + rnd_ifd + k_ic)
    return e_ic + retail_mac(k_mac, e_ic), rnd_ifd, k_ifd


def session_keys(k_ifd: bytes, k_ic: bytes, rnd_ic: bytes,
                 rnd_ifd: bytes) -> tuple[bytes, bytes, bytes]:
    """(KS_enc, KS_mac, SSC): KS_seed = K.IFD xor K.IC through the KDF; the SSC is the
    low four bytes of RND.IC followed by the low four bytes of RND.IFD."""
    seed = xor(k_ifd, k_ic)
    return kdf(seed, KDF_ENC), kdf(seed, KDF_MAC), rnd_ic[-4:] + rnd_ifd[-4:]
