"""The 256-byte text of a resident ID card (UCS-2 little endian, space padded) as an
``IdentityDocument``.

Layout, in characters: name 15, gender 1 (GB/T 2261.1 code), nation 2 (GB/T 3304 code),
birth date 8 (YYYYMMDD), address 35, ID number 18, issuing authority 15, validity start 8,
validity end 8 (YYYYMMDD or 长期), then 18 reserved. The last reserved character marks
other card kinds on the same chip format: ``I`` 外国人永久居留身份证, ``J`` 港澳台居民居住证.

Errors name the field that is wrong, never its content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from devices import idnumber
from devices.ga467.protocol import TEXT_LENGTH
from devices.ga467.tables import GENDERS, NATIONS
from devices.identity import (
    Authenticity,
    DocumentType,
    IdentityDocument,
    PhotoStatus,
)

# (field, characters) in card order.
LAYOUT: tuple[tuple[str, int], ...] = (
    ("name", 15), ("gender", 1), ("nation", 2), ("birth", 8), ("address", 35),
    ("id_number", 18), ("issuer", 15), ("valid_from", 8), ("valid_until", 8),
    ("reserved", 18),
)
NO_EXPIRY = "长期"
_PADDING = " \x00"


class RecordError(Exception):
    """The text is not a valid resident ID record; ``field`` says which part failed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class OtherCardKind(RecordError):
    """A genuine card of another kind (permanent residence, residence permit)."""


@dataclass(frozen=True, repr=False)
class CardText:
    """The text fields as stored on the card, padding removed. Personal data: no repr."""

    name: str
    gender: str
    nation: str
    birth: str
    address: str
    id_number: str
    issuer: str
    valid_from: str
    valid_until: str
    reserved: str

    def __repr__(self) -> str:
        return "CardText(...)"


def split_text(text: bytes) -> CardText:
    if len(text) != TEXT_LENGTH:
        raise RecordError("text", f"{len(text)} bytes, expected {TEXT_LENGTH}")
    try:
        chars = text.decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise RecordError("text", "not UCS-2") from exc
    fields: dict[str, str] = {}
    at = 0
    for name, width in LAYOUT:
        value = chars[at:at + width]
        fields[name] = value if name == "reserved" else value.strip(_PADDING)
        at += width
    return CardText(**fields)


def _date(field: str, value: str) -> date:
    if len(value) != 8 or not value.isascii() or not value.isdigit():
        raise RecordError(field, "not a YYYYMMDD date")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError as exc:
        raise RecordError(field, "not a calendar date") from exc


def to_document(
    text: bytes,
    photo: bytes | None = None,
    read_stats: Mapping[str, float] | None = None,
    today: date | None = None,
) -> IdentityDocument:
    """Decode the card text. ``photo`` is a decoded image (PNG) or None when unavailable.

    The data is marked verified: the certified SAM authenticated the chip before it gave
    the text out, so the reader does not repeat that check.
    """
    card = split_text(text)
    kind = card.reserved[-1:]
    if kind in ("I", "J"):
        raise OtherCardKind("reserved", f"card kind {kind!r} is not a resident ID card")
    if not card.name:
        raise RecordError("name", "empty")
    gender = GENDERS.get(card.gender)
    if gender is None:
        raise RecordError("gender", "not a GB/T 2261.1 code")
    nation = NATIONS.get(card.nation)
    if nation is None:
        raise RecordError("nation", "not a GB/T 3304 code")
    birth = _date("birth", card.birth)
    found = idnumber.problems(card.id_number, today)
    if found:
        raise RecordError("id_number", ", ".join(found))
    if not card.issuer:
        raise RecordError("issuer", "empty")
    valid_from = _date("valid_from", card.valid_from)
    valid_until = None if card.valid_until == NO_EXPIRY else _date("valid_until",
                                                                    card.valid_until)
    if valid_until is not None and valid_until < valid_from:
        raise RecordError("valid_until", "before valid_from")
    return IdentityDocument(
        document_type=DocumentType.RESIDENT_ID,
        id_number=card.id_number,
        name=card.name,
        gender=gender,
        nationality="CHN",
        birth_date=birth,
        issuer=card.issuer,
        valid_from=valid_from,
        valid_until=valid_until,
        address=card.address or None,
        ethnicity=nation,
        photo=photo,
        photo_status=PhotoStatus.AVAILABLE if photo is not None else PhotoStatus.UNAVAILABLE,
        authenticity=Authenticity.VERIFIED,
        authenticity_detail="SAM",
        read_stats=dict(read_stats or {}),
    )


def encode_text(
    *, name: str, gender_code: str, nation_code: str, birth: str, address: str,
    id_number: str, issuer: str, valid_from: str, valid_until: str, reserved: str = "",
) -> bytes:
    """The inverse of ``split_text``, for simulators and tests: each field padded with
    spaces to its width (too long raises ValueError)."""
    values = {"name": name, "gender": gender_code, "nation": nation_code, "birth": birth,
              "address": address, "id_number": id_number, "issuer": issuer,
              "valid_from": valid_from, "valid_until": valid_until, "reserved": reserved}
    parts: list[str] = []
    for field, width in LAYOUT:
        value = values[field]
        if len(value) > width:
            raise ValueError(f"{field} longer than {width} characters")
        parts.append(value.ljust(width))
    return "".join(parts).encode("utf-16-le")
