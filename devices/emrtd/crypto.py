"""The symmetric cryptography of BAC and 3DES secure messaging (ICAO 9303 Part 11, 9.7 / 9.8):
two-key 3DES in CBC mode with a zero IV, the ISO/IEC 9797-1 MAC algorithm 3 ("retail MAC")
over padding method 2, and the key derivation function of section 9.7.1.

Everything goes through ``cryptography``. It only offers DES as TripleDES, and warns about
8- and 16-byte keys, so single DES is written as K||K||K and two-key 3DES as K1||K2||K1:
both are the same cipher as the short forms.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

BLOCK = 8
ZERO_IV = bytes(BLOCK)

# Part 11 9.7.1: the 32-bit counter appended to the seed selects which key is derived.
KDF_ENC = 1
KDF_MAC = 2


def pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80, then zeros up to a whole block. Always adds at
    least one byte, so a message that fills its blocks gains a whole block."""
    padded = bytes(data) + b"\x80"
    return padded + bytes(-len(padded) % BLOCK)


def unpad(data: bytes) -> bytes:
    """Undo ``pad``; ValueError when the padding is not method 2 (a wrong key or tampering)."""
    if not data or len(data) % BLOCK:
        raise ValueError("padded data is not a whole number of blocks")
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= BLOCK:
        raise ValueError("padding is not ISO/IEC 9797-1 method 2")
    return stripped[:-1]


def _tdes_key(key: bytes) -> bytes:
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 8:
        return key * 3
    if len(key) == 24:
        return key
    raise ValueError(f"a DES key is 8, 16 or 24 bytes, not {len(key)}")


def _cipher(key: bytes, mode: modes.Mode) -> Cipher:
    return Cipher(TripleDES(_tdes_key(key)), mode)


def _check_blocks(data: bytes) -> None:
    if len(data) % BLOCK:
        raise ValueError(f"{len(data)} bytes is not a whole number of {BLOCK}-byte blocks")


def tdes_encrypt(key: bytes, data: bytes) -> bytes:
    """3DES-CBC with a zero IV, no padding (the caller pads). ``key`` is 16 bytes (K1||K2)."""
    _check_blocks(data)
    enc = _cipher(key, modes.CBC(ZERO_IV)).encryptor()
    return enc.update(data) + enc.finalize()


def tdes_decrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data)
    dec = _cipher(key, modes.CBC(ZERO_IV)).decryptor()
    return dec.update(data) + dec.finalize()


def retail_mac(key: bytes, data: bytes, *, padded: bool = False) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with DES: CBC with Ka over every block, then the last
    block decrypted with Kb and encrypted with Ka. ``data`` is padded with method 2 unless
    ``padded`` says the caller already did (9303 pads before MACing in some steps)."""
    if len(key) != 16:
        raise ValueError(f"a retail MAC key is 16 bytes, not {len(key)}")
    message = bytes(data) if padded else pad(data)
    _check_blocks(message)
    ka, kb = key[:8], key[8:]
    enc = _cipher(ka, modes.CBC(ZERO_IV)).encryptor()
    chained = (enc.update(message) + enc.finalize())[-BLOCK:]
    dec_b = _cipher(kb, modes.ECB()).decryptor()
    step = dec_b.update(chained) + dec_b.finalize()
    enc_a = _cipher(ka, modes.ECB()).encryptor()
    return enc_a.update(step) + enc_a.finalize()


def mac_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison, so a forged MAC cannot be found a byte at a time."""
    return hmac.compare_digest(a, b)


def adjust_parity(key: bytes) -> bytes:
    """Set the low bit of each byte so every byte has odd parity, as DES keys require."""
    out = bytearray()
    for byte in key:
        high = byte & 0xFE
        out.append(high | ((bin(high).count("1") + 1) & 1))
    return bytes(out)


def kdf(seed: bytes, counter: int) -> bytes:
    """Part 11 9.7.1 for 3DES: SHA-1(seed || counter as 4 bytes), the first 16 bytes with
    DES parity adjusted. ``counter`` is ``KDF_ENC`` (1) or ``KDF_MAC`` (2)."""
    if not 0 <= counter <= 0xFFFFFFFF:
        raise ValueError("the KDF counter is a 32-bit number")
    digest = hashlib.sha1(bytes(seed) + counter.to_bytes(4, "big")).digest()
    return adjust_parity(digest[:16])


def xor(a: bytes, b: bytes) -> bytes:
    if len(a) != len(b):
        raise ValueError("xor of byte strings of different lengths")
    return bytes(x ^ y for x, y in zip(a, b, strict=True))
