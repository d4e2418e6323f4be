"""Encryption at rest for the outbox: AES-256-GCM with a key file only the kiosk user can read.

What is sealed: everything personal about a waiting submission (applicant, form, commitment)
and every material's bytes (PIPL: 敏感个人信息 must be protected while stored). A sealed value
is ``version byte || 96-bit random nonce || ciphertext || tag``.

The associated data names the table, column and row id the value belongs to, so a value copied
into another row or column (by a bug, or by someone editing the file) fails authentication
instead of being sent as somebody else's application.

The key file holds one line, the 32-byte key in base64url. It is written 0600 at provisioning
(:func:`create_key`) and refused when group or others could read it, or when it belongs to
another user: a key anyone can read protects nothing. Each sealed row also records a short key
id (a digest of the key, not the key), so opening the outbox with the wrong key fails at once
with a clear message rather than row by row.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiosk.durable import fsync_dir

KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT_V1 = b"\x01"
_KEY_ID_PREFIX = b"zizhu-outbox-key-id:"


class OutboxKeyError(Exception):
    """The key file is missing, unreadable, too widely readable, malformed, or not the key
    the outbox was sealed with. The kiosk must not start the outbox with it."""


class SealedDataError(Exception):
    """A sealed value does not authenticate: wrong key, or the stored bytes were altered or
    moved to another row. The message names the row, never its content."""


def create_key(path: Path) -> Path:
    """Write a new random key to ``path`` with mode 0600 (provisioning). Refuses to overwrite:
    replacing the key makes every waiting submission unreadable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    # O_EXCL: never truncate an existing key; mode applies at creation, before any byte exists.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have removed bits, never added; make it exact
        os.write(fd, base64.urlsafe_b64encode(key) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
    return path


def load_key(path: Path) -> bytes:
    """Read the key from ``path`` after checking who can read the file."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise OutboxKeyError(f"outbox key file {path} does not exist; create it at "
                             "provisioning (kiosk.outbox.create_key)") from None
    except OSError as exc:
        raise OutboxKeyError(f"outbox key file {path} cannot be opened: "
                             f"{exc.strerror or exc}") from None
    try:
        # fstat on the open descriptor: the file checked is the file read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OutboxKeyError(f"outbox key file {path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise OutboxKeyError(f"outbox key file {path} belongs to uid {info.st_uid}, not to "
                                 f"the kiosk user (uid {os.geteuid()})")
        if info.st_mode & 0o077:
            raise OutboxKeyError(
                f"outbox key file {path} has mode {stat.S_IMODE(info.st_mode):04o}: group or "
                "others may access it; it must be 0600 (chmod 600) or 0400")
        raw = os.read(fd, 1024)
    finally:
        os.close(fd)
    try:
        key = base64.urlsafe_b64decode(raw.strip())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise OutboxKeyError(f"outbox key file {path} does not hold a {KEY_BYTES}-byte key in "
                             "base64url")
    return key


def key_id(key: bytes) -> str:
    """A short public name for ``key``: tells keys apart without revealing them."""
    return hashlib.sha256(_KEY_ID_PREFIX + key).hexdigest()[:16]


def associated_data(table: str, column: str, row_id: int) -> bytes:
    return f"zizhu-outbox:{table}:{column}:{row_id}".encode("ascii")


class Sealer:
    """Seals and opens values bound to a (table, column, row id)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise OutboxKeyError(f"an outbox key is {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self.key_id = key_id(key)

    @classmethod
    def from_key_file(cls, path: Path) -> Sealer:
        return cls(load_key(path))

    def __repr__(self) -> str:
        return f"Sealer(key_id={self.key_id!r})"

    def seal(self, plaintext: bytes, table: str, column: str, row_id: int) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT_V1 + nonce + self._aead.encrypt(
            nonce, plaintext, associated_data(table, column, row_id))

    def open(self, sealed: bytes, table: str, column: str, row_id: int) -> bytes:
        where = f"{table}.{column} of row {row_id}"
        if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != FORMAT_V1:
            raise SealedDataError(f"{where}: not a sealed value of a known format")
        nonce = sealed[1:1 + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + NONCE_BYTES:],
                                      associated_data(table, column, row_id))
        except InvalidTag:
            raise SealedDataError(f"{where} does not authenticate: wrong key, or the data was "
                                  "altered or moved") from None
