from __future__ import annotations

import threading

from devices.contract import (
    CommandContext,
    CommandFailed,
    Completion,
    EventKind,
    MediaState,
    Severity,
)
from devices.identity import IdCardReader, IdentityDocument, MrzAccess, SmartCardReader
from devices.sim.base import SimulatedDevice


class _SimIdentityReader(SimulatedDevice):
    """A card slot: insert a document, remove it, or insert something unreadable."""

    def __init__(self, device_id: str, read_delay_s: float = 0.3) -> None:
        super().__init__(device_id)
        self.read_delay_s = read_delay_s
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
        while self.status().media is not MediaState.PRESENT:
            if ctx.wait(0.05):
                ctx.check()
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
        return card


class SimIdCardReader(_SimIdentityReader, IdCardReader):
    def __init__(self, device_id: str = "id_card", read_delay_s: float = 0.3) -> None:
        super().__init__(device_id, read_delay_s)


class SimSmartCardReader(_SimIdentityReader, SmartCardReader):
    def __init__(self, device_id: str = "smart_card", read_delay_s: float = 0.3) -> None:
        super().__init__(device_id, read_delay_s)
