"""The audit trail: what happened at the kiosk, kept in the database, never personal data.

Two guards, because the trail outlives every session and PIPL forbids keeping what it must not:
- a key named like a personal field (``name``, ``id_number``, ``phone``...) is refused with
  ValueError. That is a programming error, so it fails loudly in tests rather than being
  silently dropped;
- every string value passes through :func:`kiosk.privacy.mask_text`, which catches ID and phone
  numbers that slip in through free text (an error message quoting a bad input, say).
Names in free text cannot be detected; code must not put them in a detail at all.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from kiosk.privacy import mask_text
from kiosk.storage.db import Database
from kiosk.storage.models import AuditEvent

log = logging.getLogger(__name__)

PERSONAL_KEYS: frozenset[str] = frozenset({
    "name", "full_name", "applicant_name", "holder_name", "citizen_name",
    "id_number", "id_no", "id_card_number", "sfzh",  # 身份证号 in pinyin initials
    "address", "phone", "phone_number", "mobile",
    "face", "photo", "portrait",
    "birth_date", "birthday", "dob",
})
# applicant_phone, holder_photo, contact_mobile...: the same fields under a qualifier.
_PERSONAL_SUFFIXES: tuple[str, ...] = (
    "_id_number", "_phone", "_mobile", "_birth_date", "_address", "_photo", "_face",
)
_PERSON_PREFIXES: tuple[str, ...] = ("applicant_", "holder_", "citizen_", "contact_")
# Addresses of machines, not people.
_NOT_PERSONAL: frozenset[str] = frozenset({"ip_address", "mac_address", "url_address"})


def is_personal_key(key: str) -> bool:
    """True when ``key`` names a field that holds personal data."""
    k = key.strip().lower().replace("-", "_")
    if k in _NOT_PERSONAL:
        return False
    if k in PERSONAL_KEYS or k.endswith(_PERSONAL_SUFFIXES):
        return True
    return any(k.startswith(p) and k[len(p):] in PERSONAL_KEYS for p in _PERSON_PREFIXES)


def _clean(value: object, path: str) -> Any:
    """A JSON-ready copy of ``value`` with personal keys refused and strings masked."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            key_text = str(key)
            where = f"{path}.{key_text}" if path else key_text
            if is_personal_key(key_text):
                raise ValueError(f"audit detail key {where!r} names personal data; "
                                 f"record an id or a masked value under another key")
            out[mask_text(key_text)] = _clean(item, where)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(item, path) for item in value]
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    # Anything else is stored as its text, masked like any other string.
    return mask_text(str(value))


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    kind: str
    session_id: str | None
    device_id: str | None
    detail: dict[str, Any]


class AuditLog:
    """The database-backed :class:`flows.ports.AuditSink`."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] | None = None) -> None:
        self._db = db
        self._clock = clock or (lambda: datetime.now(UTC))

    def record(self, kind: str, *, session_id: str | None = None,
               device_id: str | None = None, detail: dict[str, object] | None = None) -> None:
        """Append one event, committed before returning.

        Raises ValueError when ``detail`` holds a personal key. An operational database failure
        (disk full, I/O error, locked too long) is logged and swallowed: losing an audit line
        must not stop a citizen's transaction. Programming errors still raise.
        """
        text = json.dumps(_clean(detail or {}, ""), ensure_ascii=False, sort_keys=True)
        row = AuditEvent(at=self._clock(), kind=mask_text(kind), session_id=session_id,
                         device_id=device_id, detail=text)
        try:
            with self._db.session() as session, session.begin():
                session.add(row)
        except OperationalError:
            log.exception("audit event %r not stored", kind)

    def recent(self, limit: int = 100) -> list[AuditRecord]:
        """The newest ``limit`` events, newest first."""
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(0, limit))
        with self._db.session() as session:
            rows = session.scalars(query).all()
        return [
            AuditRecord(id=r.id, at=r.at, kind=r.kind, session_id=r.session_id,
                        device_id=r.device_id, detail=json.loads(r.detail))
            for r in rows
        ]
