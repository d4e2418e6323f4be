"""What an appointment QR code may contain, and whether to believe it — decided offline.

Two kinds of code (docs/appointment-code.md is the format's specification):

- **signed** ``ZZ1:`` + base45(DER body + Ed25519 signature): the booking system signed the
  appointment itself, so the kiosk can show it without asking anyone. Verified here against
  the public keys in the kiosk's config; every way it can fail has its own
  :class:`Rejection`.
- **unsigned** ``APT-DEMO-0001`` or ``ZZAPT:APT-DEMO-0001``: a reference the back office
  issued online and resolves. Only its shape is checked here.

Anything else — a web link, a payment code, binary noise — is refused without a network call.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import base45
from asn1crypto import core
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# -- unsigned codes -----------------------------------------------------------------------------
PREFIX = "ZZAPT:"
_CODE = re.compile(r"[A-Za-z0-9_-]{4,64}")


class MalformedCode(ValueError):
    """The payload is not an appointment code; ``reason`` says why, for the audit log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_appointment_code(payload: str) -> str:
    text = payload.strip()  # scanners in keyboard/serial mode append CR/LF
    if text.upper().startswith(PREFIX):
        text = text[len(PREFIX):]
    if not text:
        raise MalformedCode("empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise MalformedCode("control_characters")
    if "://" in text:
        raise MalformedCode("web_link")
    if not _CODE.fullmatch(text):
        raise MalformedCode("not_an_appointment_code")
    return text.upper()


# -- signed codes -------------------------------------------------------------------------------
VERSION = 1
SIGNED_PREFIX = f"ZZ{VERSION}:"
SIGNATURE_BYTES = 64
# A v1 body with every field at its longest (4-byte UTF-8 text) stays under this; anything
# longer is not ours and is refused before the DER parser sees it.
MAX_SIGNED_BYTES = 1024
_ANY_VERSION = re.compile(r"ZZ(\d{1,3}):")

KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
APPOINTMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what the back-office API accepts in a path
CENTRE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
SERVICE_ITEM_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # 事项编码 (GB/T 39554.1 style)
MAX_PLACE_CHARS = 48
MAX_SERVICE_NAME_CHARS = 48
MAX_HOLDER_CHARS = 16

class Rejection(enum.StrEnum):
    """Why a signed code is refused; each is its own screen in the check-in journey."""

    MALFORMED = "malformed"  # not a v1 code, or a field out of its range
    UNKNOWN_KEY = "unknown_key"  # signed with a key this kiosk does not trust (yet)
    FORGED = "forged"  # the signature does not match: altered or made up
    OTHER_CENTRE = "other_centre"
    EXPIRED = "expired"  # past its expiry, or past the slot's end plus the grace
    TOO_EARLY = "too_early"  # before the slot's start minus the grace


class CodeRejected(ValueError):
    """``detail`` is safe for screens and the audit log: a reason word, a key id, a centre id
    or a local time — never a name."""

    def __init__(self, reason: Rejection, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


class _Body(core.Sequence):
    """The DER body, field for field as docs/appointment-code.md defines it."""

    _fields = [
        ("version", core.Integer),
        ("key_id", core.UTF8String),
        ("appointment_id", core.UTF8String),
        ("centre_id", core.UTF8String),
        ("service_item_code", core.UTF8String),
        ("date", core.Integer),  # YYYYMMDD, the centre's calendar
        ("slot_start", core.Integer),  # HHMM, centre local time
        ("slot_end", core.Integer),
        ("expires_at", core.Integer),  # Unix seconds
        ("place", core.UTF8String),  # window/area hint: "2F B区 5号窗"
        ("service_name", core.UTF8String),  # 事项名称, for display
        ("holder", core.UTF8String),  # masked name for display ("王**"), or empty
    ]


_FIELD_NAMES = [name for name, _spec in _Body._fields]


@dataclass(frozen=True)
class SignedAppointment:
    """A verified code's content. ``holder`` is at most a masked name and still only for the
    screen (and masked again there)."""

    key_id: str
    appointment_id: str
    centre_id: str
    service_item_code: str
    date: dt.date
    slot_start: dt.time
    slot_end: dt.time
    expires_at: dt.datetime  # aware, UTC
    place: str
    service_name: str
    holder: str = field(repr=False)

    def opens(self, tz: dt.tzinfo, grace_before: dt.timedelta) -> dt.datetime:
        return dt.datetime.combine(self.date, self.slot_start, tzinfo=tz) - grace_before

    def closes(self, tz: dt.tzinfo, grace_after: dt.timedelta) -> dt.datetime:
        """The last moment it checks in: the slot's end plus the grace, or its expiry if that
        comes first."""
        slot_close = dt.datetime.combine(self.date, self.slot_end, tzinfo=tz) + grace_after
        return min(slot_close, self.expires_at.astimezone(tz))


def is_signed_code(payload: str) -> bool:
    """True for anything in the signed family (``ZZ<n>:``), whatever its version."""
    return bool(_ANY_VERSION.match(payload.strip("\r\n")))


def public_key_from_base64(text: str) -> Ed25519PublicKey:
    """A trusted key as the config writes it: the raw 32-byte Ed25519 key, base64."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"must be a raw 32-byte Ed25519 public key (got {len(raw)} bytes)")
    return Ed25519PublicKey.from_public_bytes(raw)


def base45_decode(text: str) -> bytes:
    """RFC 9285. ValueError for a character outside the alphabet or an impossible group."""
    return base45.b45decode(text)


def _split(payload: str) -> tuple[bytes, bytes, bytes]:
    """(signed message, body DER, signature), or MALFORMED."""
    # Only line ends are stripped: a space is a base45 digit and may end the code.
    text = payload.strip("\r\n")
    version = _ANY_VERSION.match(text)
    if version is None:
        raise CodeRejected(Rejection.MALFORMED, "not_signed_code")
    if text[:version.end()] != SIGNED_PREFIX:
        raise CodeRejected(Rejection.MALFORMED, "unsupported_version")
    try:
        data = base45_decode(text[version.end():])
    except ValueError:
        raise CodeRejected(Rejection.MALFORMED, "not_base45") from None
    if len(data) <= SIGNATURE_BYTES + 2:
        raise CodeRejected(Rejection.MALFORMED, "truncated")
    if len(data) > MAX_SIGNED_BYTES:
        raise CodeRejected(Rejection.MALFORMED, "too_long")
    body, signature = data[:-SIGNATURE_BYTES], data[-SIGNATURE_BYTES:]
    # The prefix is signed too: a body cannot be replayed under another version's rules.
    return SIGNED_PREFIX.encode("ascii") + body, body, signature


def _parse_body(body: bytes) -> dict[str, object]:
    try:
        parsed = _Body.load(body, strict=True)
        native = dict(parsed.native)
        # DER, not just BER: one encoding per body, and nothing after the last field (the
        # parser would keep extra fields under their index).
        canonical = list(native) == _FIELD_NAMES and _Body(native).dump() == body
    except (ValueError, TypeError, KeyError, OverflowError):
        # asn1crypto parses lazily and reports bad input as any of these; all mean "not a body".
        raise CodeRejected(Rejection.MALFORMED, "not_der") from None
    if not canonical:
        raise CodeRejected(Rejection.MALFORMED, "not_der")
    return native


def _hhmm(value: object, name: str) -> dt.time:
    if not isinstance(value, int) or not 0 <= value <= 2359 or value % 100 > 59:
        raise CodeRejected(Rejection.MALFORMED, f"bad_{name}")
    return dt.time(value // 100, value % 100)


def _text(fields: Mapping[str, object], name: str, pattern: re.Pattern[str] | None = None,
          max_chars: int = 64) -> str:
    value = fields[name]
    if not isinstance(value, str) or len(value) > max_chars \
            or (pattern is not None and not pattern.fullmatch(value)) \
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise CodeRejected(Rejection.MALFORMED, f"bad_{name}")
    return value


def _appointment(fields: Mapping[str, object]) -> SignedAppointment:
    day = fields["date"]
    try:
        if not isinstance(day, int):
            raise ValueError
        date = dt.date(day // 10000, day // 100 % 100, day % 100)
    except ValueError:
        raise CodeRejected(Rejection.MALFORMED, "bad_date") from None
    start, end = _hhmm(fields["slot_start"], "slot_start"), _hhmm(fields["slot_end"], "slot_end")
    if end <= start:
        raise CodeRejected(Rejection.MALFORMED, "bad_slot_end")
    expires = fields["expires_at"]
    try:
        if not isinstance(expires, int) or expires < 0:
            raise ValueError
        expires_at = dt.datetime.fromtimestamp(expires, dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise CodeRejected(Rejection.MALFORMED, "bad_expires_at") from None
    return SignedAppointment(
        key_id=_text(fields, "key_id", KEY_ID),
        appointment_id=_text(fields, "appointment_id", APPOINTMENT_ID),
        centre_id=_text(fields, "centre_id", CENTRE_ID),
        service_item_code=_text(fields, "service_item_code", SERVICE_ITEM_CODE),
        date=date, slot_start=start, slot_end=end, expires_at=expires_at,
        place=_text(fields, "place", max_chars=MAX_PLACE_CHARS),
        service_name=_text(fields, "service_name", max_chars=MAX_SERVICE_NAME_CHARS),
        holder=_text(fields, "holder", max_chars=MAX_HOLDER_CHARS))


def verify_signed_code(payload: str, keys: Mapping[str, Ed25519PublicKey]) -> SignedAppointment:
    """The appointment a signed code carries, if one of ``keys`` (key id -> public key) signed
    it. Raises :class:`CodeRejected` with MALFORMED, UNKNOWN_KEY or FORGED.

    Only the key id is read before the signature is checked; every other field is judged
    after it, so a forged code is reported as forged, not as whatever its fields look like.
    """
    message, body, signature = _split(payload)
    fields = _parse_body(body)
    if fields.get("version") != VERSION:
        raise CodeRejected(Rejection.MALFORMED, "version_mismatch")
    key_id = fields.get("key_id")
    if not isinstance(key_id, str) or not KEY_ID.fullmatch(key_id):
        raise CodeRejected(Rejection.MALFORMED, "bad_key_id")
    key = keys.get(key_id)
    if key is None:
        raise CodeRejected(Rejection.UNKNOWN_KEY, key_id)
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise CodeRejected(Rejection.FORGED, "bad_signature") from None
    return _appointment(fields)


def _local(moment: dt.datetime, now: dt.datetime) -> str:
    """A time as the citizen reads it: just HH:MM today, with the date on another day."""
    return f"{moment:%H:%M}" if moment.date() == now.date() else f"{moment:%Y-%m-%d %H:%M}"


def check_validity(appointment: SignedAppointment, *, centre_id: str, now: dt.datetime,
                   grace_before: dt.timedelta, grace_after: dt.timedelta) -> None:
    """Whether a verified code checks in here and now: OTHER_CENTRE, EXPIRED or TOO_EARLY.

    ``now`` is aware and in the centre's zone: a code's date and slot are that zone's wall
    clock. The window is inclusive at both ends."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime in the centre's time zone")
    if appointment.centre_id != centre_id:
        raise CodeRejected(Rejection.OTHER_CENTRE, appointment.centre_id)
    tz = now.tzinfo
    closes = appointment.closes(tz, grace_after)
    if now > closes or now >= appointment.expires_at:
        raise CodeRejected(Rejection.EXPIRED, _local(closes, now))
    opens = appointment.opens(tz, grace_before)
    if now < opens:
        raise CodeRejected(Rejection.TOO_EARLY, _local(opens, now))
