"""Identity readers: the resident ID card over a serial SAM (GA/T 467) and eMRTD chips over
PC/SC share one command, ``read_identity``, so a flow does not care which one the citizen uses."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from devices.contract import CommandContext, Device, DeviceClass, PendingCommand


class DocumentType(enum.StrEnum):
    RESIDENT_ID = "residentId"  # 第二代居民身份证
    PASSPORT = "passport"
    TRAVEL_PERMIT = "travelPermit"  # 往来港澳台通行证 etc. (ICAO 9303 card format)


class PhotoStatus(enum.StrEnum):
    AVAILABLE = "available"
    # The resident ID photo is WLT-encrypted; without a vendor decoder it stays unavailable,
    # and the UI says so rather than showing anything in its place.
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class MrzAccess:
    """What opens a chip with Basic Access Control: document number, birth date, expiry."""

    document_number: str
    birth_date: str  # YYMMDD
    expiry_date: str  # YYMMDD


@dataclass(frozen=True, repr=False)
class IdentityDocument:
    """Personal data: never logged (repr is masked), dropped when the session ends."""

    document_type: DocumentType
    id_number: str
    name: str
    gender: str
    nationality: str
    birth_date: date
    issuer: str
    valid_from: date | None
    valid_until: date | None  # None is 长期 (no expiry)
    address: str | None = None
    photo: bytes | None = None
    photo_status: PhotoStatus = PhotoStatus.UNAVAILABLE

    def __repr__(self) -> str:
        return (f"IdentityDocument({self.document_type}, id={mask_id(self.id_number)}, "
                f"photo={self.photo_status})")


def mask_id(number: str) -> str:
    """``530102199001011234`` -> ``5301**********1234`` (DESIGN.md's mask)."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


class IdentityReader(Device):
    def read_identity(
        self, timeout: float, access: MrzAccess | None = None, session_id: str | None = None
    ) -> PendingCommand[IdentityDocument]:
        """Wait for a document and read it. Completion codes: ``noMedia`` (none presented in
        time: timeOut), ``invalidMedia``, ``securityFail`` (wrong MRZ / SAM refused),
        ``samFailure``, ``mediaRemoved`` (pulled mid-read)."""
        return self._start("readIdentity", lambda ctx: self._read_identity(ctx, access),
                           timeout, session_id)

    def _read_identity(self, ctx: CommandContext, access: MrzAccess | None) -> IdentityDocument:
        raise NotImplementedError


class IdCardReader(IdentityReader):
    """Resident ID card reader with a SAM on a serial line."""

    device_class = DeviceClass.ID_CARD_READER


class SmartCardReader(IdentityReader):
    """Contactless PC/SC reader for ICAO 9303 passports and travel permits."""

    device_class = DeviceClass.SMART_CARD_READER
