from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

from devices.contract import (
    CommandContext,
    CommandFailed,
    Completion,
    EventKind,
    MediaState,
    Severity,
)
from devices.identity import (
    Authenticity,
    DocumentType,
    IdCardReader,
    IdentityDocument,
    MrzAccess,
    SmartCardReader,
)
from devices.sim.base import SimulatedDevice


class _SimIdentityReader(SimulatedDevice):
    """A card slot: insert a document, remove it, or insert something unreadable."""

    def __init__(self, device_id: str, read_delay_s: float = 0.3,
                 present_on_read: str | None = None, present_after_s: float = 2.0) -> None:
        super().__init__(device_id)
        self.read_delay_s = read_delay_s
        # A tester's stand-in hand: a card from this file is put on the reader a moment after a
        # read starts (``make run`` has no one to insert cards).
        self._demo = load_demo_card(present_on_read) if present_on_read else None
        self.present_after_s = present_after_s
        self._lock = threading.Lock()
        self._card: IdentityDocument | None = None
        self._card_access: MrzAccess | None = None
        self._invalid = False
        self._next_failure: tuple[Completion, str] | None = None
        self._set_status(media=MediaState.NOT_PRESENT)

    # -- script ---------------------------------------------------------------------------
    def insert(self, document: IdentityDocument, access: MrzAccess | None = None) -> None:
        """Put a card on the reader. ``access`` is the MRZ a chip demands (BAC), if any."""
        with self._lock:
            self._card, self._card_access, self._invalid = document, access, False
        self._set_status(media=MediaState.PRESENT)
        self._emit(EventKind.MEDIA_INSERTED)

    def insert_invalid(self) -> None:
        """A bank card, a blank card, a card the reader cannot talk to."""
        with self._lock:
            self._card, self._invalid = None, True
        self._set_status(media=MediaState.PRESENT)
        self._emit(EventKind.MEDIA_INSERTED)

    def remove(self) -> None:
        with self._lock:
            had = self._card is not None or self._invalid
            self._card, self._card_access, self._invalid = None, None, False
        self._set_status(media=MediaState.NOT_PRESENT)
        if had:
            self._emit(EventKind.MEDIA_REMOVED)

    def fail_next_read(self, completion: Completion, code: str) -> None:
        """The next read ends this way (``hardwareError``/``samFailure`` ...)."""
        self._next_failure = (completion, code)

    # -- contract -------------------------------------------------------------------------
    def _read_identity(self, ctx: CommandContext, access: MrzAccess | None) -> IdentityDocument:
        self._require_online()
        waited = 0.0
        while self.status().media is not MediaState.PRESENT:
            if self._demo is not None and waited >= self.present_after_s:
                self.insert(*self._demo)
                continue
            if ctx.wait(0.05):
                ctx.check()
            waited += 0.05
            self._require_online()
        if self._next_failure is not None:
            failure, self._next_failure = self._next_failure, None
            raise CommandFailed(*failure)
        with self._lock:
            card, card_access, invalid = self._card, self._card_access, self._invalid
        if invalid or card is None:
            self._emit(EventKind.INVALID_MEDIA, severity=Severity.WARNING,
                       request_id=ctx.request_id)
            raise CommandFailed(Completion.INVALID_DATA, "invalidMedia")
        if card_access is not None and access != card_access:
            raise CommandFailed(Completion.USER_ERROR, "securityFail", "access key refused")
        if ctx.wait(self.read_delay_s):
            ctx.check()
        with self._lock:
            still_there = self._card is card
        if not still_there:
            raise CommandFailed(Completion.USER_ERROR, "mediaRemoved", "card removed mid-read")
        self._emit(EventKind.DATA_READ, request_id=ctx.request_id)
        if self._demo is not None:
            threading.Timer(1.0, self.remove).start()  # the citizen takes the card back
        return card


class SimIdCardReader(_SimIdentityReader, IdCardReader):
    def __init__(self, device_id: str = "id_card", read_delay_s: float = 0.3,
                 present_on_read: str | None = None, present_after_s: float = 2.0) -> None:
        super().__init__(device_id, read_delay_s, present_on_read, present_after_s)


class SimSmartCardReader(_SimIdentityReader, SmartCardReader):
    def __init__(self, device_id: str = "smart_card", read_delay_s: float = 0.3,
                 present_on_read: str | None = None, present_after_s: float = 2.0) -> None:
        super().__init__(device_id, read_delay_s, present_on_read, present_after_s)


def load_demo_card(path: str) -> tuple[IdentityDocument, MrzAccess | None]:
    """A fictional document from a JSON file (``assets/sim/*.json``); ValueError if unusable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        access = data.get("mrz_access")
        document = IdentityDocument(
            document_type=DocumentType(data["document_type"]), id_number=data["id_number"],
            name=data["name"], gender=data["gender"], nationality=data["nationality"],
            birth_date=date.fromisoformat(data["birth_date"]), issuer=data["issuer"],
            valid_from=date.fromisoformat(data["valid_from"]) if data.get("valid_from") else None,
            valid_until=(date.fromisoformat(data["valid_until"]) if data.get("valid_until")
                         else None),
            address=data.get("address"), ethnicity=data.get("ethnicity"),
            authenticity=Authenticity(data.get("authenticity", "notVerified")),
            authenticity_detail="simulated")
        return document, MrzAccess(**access) if access else None
    except (OSError, ValueError, KeyError, TypeError) as bad:
        raise ValueError(f"demo card {path}: {bad}") from None
