"""Identity readers: the resident ID card over a serial SAM (GA/T 467) and eMRTD chips over
PC/SC share one command, ``read_identity``, so a flow does not care which one the citizen uses."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
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


class Authenticity(enum.StrEnum):
    """Whether the data is known to come from a genuine document."""

    # Resident ID: the certified SAM authenticated the chip. eMRTD: passive authentication
    # passed and the document signer chains to a configured CSCA.
    VERIFIED = "verified"
    # eMRTD without a configured trust anchor, or a reader that cannot tell: never "verified".
    NOT_VERIFIED = "notVerified"
    # Hashes or signature do not match: the data was altered or the chip is a clone.
    FAILED = "failed"


class IdentityError(enum.StrEnum):
    """Device-specific error codes of ``readIdentity`` (the completion says how bad)."""

    NO_MEDIA = "noMedia"                  # nothing presented before the timeout
    INVALID_MEDIA = "invalidMedia"        # a bank card, a blank card, an unknown chip
    SECURITY_FAIL = "securityFail"        # BAC refused: the MRZ does not open this chip
    SAM_FAILURE = "samFailure"            # the ID-card reader's security module is at fault
    MEDIA_REMOVED = "mediaRemoved"        # pulled mid-read
    READ_FAILED = "readFailed"            # the card answered but the read did not complete
    SM_MAC_FAILURE = "secureMessagingFailed"  # a response MAC did not check
    LINK_ERROR = "linkError"              # garbage, short frames or bad checksums on the line
    NO_DEVICE = "noDevice"                # reader unplugged / port gone
    BAD_RECORD = "badRecord"              # decoded, but the content is not a valid document


@dataclass(frozen=True, repr=False)
class MrzAccess:
    """What opens a chip with Basic Access Control: document number, birth date, expiry."""

    document_number: str
    birth_date: str  # YYMMDD
    expiry_date: str  # YYMMDD

    def __repr__(self) -> str:  # tracebacks and logs must not carry the document's data
        return f"MrzAccess({mask_id(self.document_number)}, ******, ******)"


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
    ethnicity: str | None = None  # 民族, resident ID only
    photo: bytes | None = None  # JPEG/PNG bytes when available; never a stand-in
    photo_status: PhotoStatus = PhotoStatus.UNAVAILABLE
    authenticity: Authenticity = Authenticity.NOT_VERIFIED
    authenticity_detail: str = ""
    # Non-personal figures of the read (seconds, APDU count, bytes) for diagnostics and bench.
    read_stats: Mapping[str, float] = field(default_factory=dict)

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
        """Wait for a document and read it; error codes are ``IdentityError`` values."""
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
