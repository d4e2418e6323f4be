"""Issuing signed appointment codes: the booking system's side of docs/appointment-code.md.

A code is ``ZZ1:`` + base45(DER body + Ed25519 signature over ``ZZ1:`` + DER body). The kiosk
verifies it offline with the public key its config lists under the key id. This module is a
second, independent implementation of the format (the kiosk's is ``flows/appointment_code.py``;
the back office imports nothing of the kiosk's), so the tests that pass codes from here to
there check the specification, not one piece of code against itself.

Signing keys live in a PEM file (PKCS#8), created with mode 0600 on first use. Without a file
the back office signs with the published demo key (key id ``demo``): only demo configurations
trust it, so a forgotten setting fails closed at every real kiosk.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import base45
from asn1crypto import core
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice import models

VERSION = 1
PREFIX = f"ZZ{VERSION}:"

DEMO_KEY_ID = "demo"
# RFC 8032 section 7.1, TEST 1: a key the whole world knows, which is the point. Never list
# it in a real kiosk's config.
_DEMO_PRIVATE_KEY = bytes.fromhex(
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
_APPOINTMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CENTRE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_ITEM_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_PLACE_CHARS = 48
MAX_SERVICE_NAME_CHARS = 48
MAX_HOLDER_CHARS = 16



class SigningKeyError(ValueError):
    """The signing key file cannot be used; the message names the file and the fix."""


class _Body(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("key_id", core.UTF8String),
        ("appointment_id", core.UTF8String),
        ("centre_id", core.UTF8String),
        ("service_item_code", core.UTF8String),
        ("date", core.Integer),
        ("slot_start", core.Integer),
        ("slot_end", core.Integer),
        ("expires_at", core.Integer),
        ("place", core.UTF8String),
        ("service_name", core.UTF8String),
        ("holder", core.UTF8String),
    ]


# --- keys --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private_key: Ed25519PrivateKey

    @property
    def public_key_base64(self) -> str:
        """The raw 32-byte public key, base64: what the kiosk config lists."""
        return base64.b64encode(self.private_key.public_key().public_bytes_raw()).decode("ascii")

    def kiosk_config(self) -> str:
        """The TOML a kiosk needs to trust this key (merge it into its [appointment_codes])."""
        return f'[appointment_codes.keys]\n{self.key_id} = "{self.public_key_base64}"\n'

    def __repr__(self) -> str:
        return f"SigningKey({self.key_id!r})"


def key_id_for(private_key: Ed25519PrivateKey) -> str:
    """A key id derived from the public key, so a new key always gets a new id and a key
    file needs no second field to keep in step."""
    digest = hashlib.sha256(private_key.public_key().public_bytes_raw()).digest()
    return "k" + base64.b32encode(digest).decode("ascii")[:7].lower()


def demo_signing_key() -> SigningKey:
    return SigningKey(DEMO_KEY_ID, Ed25519PrivateKey.from_private_bytes(_DEMO_PRIVATE_KEY))


def load_or_create_signing_key(path: str | Path) -> SigningKey:
    """The key in ``path`` (PEM, PKCS#8 Ed25519); a new one is written there, mode 0600, if
    the file does not exist. A file others can read is refused, as ssh refuses such keys."""
    path = Path(path)
    try:
        if not path.exists():
            return _create(path)
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SigningKeyError(f"signing key {path} is accessible to others "
                                  f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}")
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"signing key {path}: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"signing key {path} is not an unencrypted PEM private key") \
            from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {path} is not an Ed25519 key")
    return SigningKey(key_id_for(key), key)


def _create(path: Path) -> SigningKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting at once cannot both write a key and hand out two ids;
    # the mode is set at creation, so the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return SigningKey(key_id_for(key), key)


# --- codes -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CodeFields:
    """What a code says. Times of day are the centre's wall clock; ``expires_at`` is aware."""

    appointment_id: str
    centre_id: str
    service_item_code: str
    date: dt.date
    slot_start: dt.time
    slot_end: dt.time
    expires_at: dt.datetime
    place: str = ""
    service_name: str = ""
    holder: str = ""  # already masked: mask_holder()

    def __repr__(self) -> str:
        return f"CodeFields({self.appointment_id}, {self.centre_id}, {self.date})"


def mask_holder(name: str) -> str:
    """张三 -> 张*: what a code may carry of a name (the kiosk masks it again)."""
    name = name.strip()
    return name[:1] + "*" * max(1, len(name) - 1) if name else ""


def end_of_day(date: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """Midnight after ``date`` in the centre's zone: the default expiry of a code."""
    return dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), tzinfo=tz)


def _check(fields: CodeFields) -> None:
    problems = []
    for name, pattern, allowed in (
            ("appointment_id", _APPOINTMENT_ID, "A-Z a-z 0-9 _ -"),
            ("centre_id", _CENTRE_ID, "A-Z a-z 0-9 _ . : -"),
            ("service_item_code", _ITEM_CODE, "A-Z a-z 0-9 _ -")):
        if not pattern.fullmatch(getattr(fields, name)):
            problems.append(f"{name} must be 1..64 of {allowed}")
    for name, limit in (("place", MAX_PLACE_CHARS), ("service_name", MAX_SERVICE_NAME_CHARS),
                        ("holder", MAX_HOLDER_CHARS)):
        value = getattr(fields, name)
        if len(value) > limit or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            problems.append(f"{name} must be at most {limit} printable characters")
    if fields.slot_end <= fields.slot_start:
        problems.append("slot_end must be after slot_start")
    if fields.expires_at.tzinfo is None:
        problems.append("expires_at must be an aware datetime")
    if problems:
        raise ValueError("; ".join(problems))


def _hhmm(value: dt.time) -> int:
    return value.hour * 100 + value.minute


def base45_encode(data: bytes) -> str:
    """RFC 9285: two bytes to three characters of the QR alphanumeric set."""
    return base45.b45encode(data).decode("ascii")


def issue_code(fields: CodeFields, key: SigningKey) -> str:
    """The QR text for ``fields`` signed with ``key``. ValueError if a field is out of the
    format's range (so nothing is issued that a kiosk would call malformed)."""
    _check(fields)
    if not _KEY_ID.fullmatch(key.key_id):
        raise ValueError("key id must be 1..16 of A-Z a-z 0-9 _ -")
    body = _Body({
        "version": VERSION,
        "key_id": key.key_id,
        "appointment_id": fields.appointment_id,
        "centre_id": fields.centre_id,
        "service_item_code": fields.service_item_code,
        "date": fields.date.year * 10000 + fields.date.month * 100 + fields.date.day,
        "slot_start": _hhmm(fields.slot_start),
        "slot_end": _hhmm(fields.slot_end),
        "expires_at": int(fields.expires_at.timestamp()),
        "place": fields.place,
        "service_name": fields.service_name,
        "holder": fields.holder,
    }).dump()
    signature = key.private_key.sign(PREFIX.encode("ascii") + body)
    return PREFIX + base45_encode(body + signature)


def fields_for_appointment(session: Session, appt: models.Appointment,
                           tz: dt.tzinfo) -> CodeFields:
    """What the reference back office puts in the code of one of its appointments: the place
    is the queue of the appointment's service item, the expiry the end of its day."""
    item = session.scalar(select(models.ServiceItem).where(
        models.ServiceItem.centre_id == appt.centre_id,
        models.ServiceItem.code == appt.service_item_code))
    category = item and session.scalar(select(models.TicketCategory).where(
        models.TicketCategory.centre_id == appt.centre_id,
        models.TicketCategory.code == item.category_code))
    place = " ".join(p for p in (category.floor, category.area, category.window) if p) \
        if category else ""
    return CodeFields(
        appointment_id=appt.id, centre_id=appt.centre_id,
        service_item_code=appt.service_item_code, date=appt.date,
        slot_start=appt.slot_start, slot_end=appt.slot_end,
        expires_at=end_of_day(appt.date, tz), place=place[:MAX_PLACE_CHARS],
        service_name=(item.name if item else "")[:MAX_SERVICE_NAME_CHARS],
        holder=mask_holder(appt.applicant_name)[:MAX_HOLDER_CHARS])
