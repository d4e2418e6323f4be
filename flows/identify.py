"""Identify the citizen: the resident ID card on the SAM reader, or a passport / travel permit
chip opened with the MRZ typed on the keypad or read by the camera.

A camera reading has passed every MRZ check digit, yet OCR can still be wrong in a way the
digits do not catch; a chip refuses BAC keys it does not know, and some count the refusals. So a
camera reading opens the chip at most once: if the chip refuses it, the camera is switched off
for the session and the citizen types the fields instead.

Whichever identity reader is present is offered; the journey that needs an identity (progress
query, application, certificate) takes ``document`` once the step is ``identified`` and the
flow forgets it on ``wipe``. Each way a read can fail has its own problem and its own way back.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np

from devices.camera import Camera
from devices.contract import Completion, EventKind, MediaState
from devices.emrtd.mrz import MrzError, access_from_fields, parse_mrz
from devices.identity import (
    Authenticity,
    DocumentType,
    IdentityDocument,
    IdentityError,
    IdentityReader,
    MrzAccess,
    PhotoStatus,
    mask_id,
)
from flows.base import Flow
from flows.ports import AuditSink
from flows.privacy import mask_name


class IdStep(enum.StrEnum):
    PRESENT_ID_CARD = "present_id_card"  # 请放置身份证 (a passport is offered too)
    ENTER_MRZ = "enter_mrz"  # document number, birth date, expiry from the data page
    PRESENT_CHIP = "present_chip"  # 请将护照/通行证放在感应区
    READING = "reading"  # a document is on the reader: do not remove it
    IDENTIFIED = "identified"
    FAILED = "failed"
    CANCELLED = "cancelled"


class IdProblem(enum.StrEnum):
    NO_READER = "no_reader"
    TIMEOUT = "timeout"
    INVALID_CARD = "invalid_card"
    ACCESS_DENIED = "access_denied"  # the MRZ typed does not open this chip
    CARD_REMOVED = "card_removed"
    READ_FAILED = "read_failed"
    READER_FAILED = "reader_failed"
    NOT_GENUINE = "not_genuine"  # passive authentication failed: altered data or a clone
    EXPIRED = "expired"
    BAD_RECORD = "bad_record"


class IdAction(enum.StrEnum):
    TRY_AGAIN = "try_again"
    USE_PASSPORT = "use_passport"
    USE_ID_CARD = "use_id_card"
    ENTER_MRZ_AGAIN = "enter_mrz_again"
    CONTINUE = "continue"
    HOME = "home"
    CALL_STAFF = "call_staff"


_PROBLEM_ACTIONS: dict[IdProblem, tuple[IdAction, ...]] = {
    IdProblem.NO_READER: (IdAction.CALL_STAFF, IdAction.HOME),
    IdProblem.TIMEOUT: (IdAction.TRY_AGAIN, IdAction.HOME),
    IdProblem.INVALID_CARD: (IdAction.TRY_AGAIN, IdAction.HOME),
    IdProblem.ACCESS_DENIED: (IdAction.ENTER_MRZ_AGAIN, IdAction.HOME),
    IdProblem.CARD_REMOVED: (IdAction.TRY_AGAIN, IdAction.HOME),
    IdProblem.READ_FAILED: (IdAction.TRY_AGAIN, IdAction.CALL_STAFF, IdAction.HOME),
    IdProblem.READER_FAILED: (IdAction.CALL_STAFF, IdAction.HOME),
    IdProblem.NOT_GENUINE: (IdAction.CALL_STAFF, IdAction.HOME),
    IdProblem.EXPIRED: (IdAction.CALL_STAFF, IdAction.HOME),
    IdProblem.BAD_RECORD: (IdAction.CALL_STAFF, IdAction.HOME),
}

# ``IdentifyView.detail`` on the keypad after the chip refused the MRZ the camera read.
CAMERA_MRZ_REFUSED = "camera_mrz_refused"

# Reads the MRZ text from a BGR frame (numpy array), or None; only readings whose check
# digits all pass. Injected, so the flow runs without OCR in tests and without a camera.
MrzTextReader = Callable[[np.ndarray], str | None]

# Device error code -> problem; anything not listed is the reader's own failure.
_ERROR_PROBLEMS: dict[str, IdProblem] = {
    IdentityError.INVALID_MEDIA: IdProblem.INVALID_CARD,
    IdentityError.SECURITY_FAIL: IdProblem.ACCESS_DENIED,
    IdentityError.MEDIA_REMOVED: IdProblem.CARD_REMOVED,
    IdentityError.READ_FAILED: IdProblem.READ_FAILED,
    IdentityError.SM_MAC_FAILURE: IdProblem.READ_FAILED,
    IdentityError.BAD_RECORD: IdProblem.BAD_RECORD,
}


@dataclass(frozen=True)
class IdentitySummary:
    """What the screen shows of the document read: identifiers masked (DESIGN.md)."""

    document_type: DocumentType
    name: str
    id_number: str
    valid_until: date | None  # None is 长期
    photo: bytes | None
    photo_status: PhotoStatus
    authenticity: Authenticity

    @classmethod
    def of(cls, document: IdentityDocument) -> IdentitySummary:
        return cls(document.document_type, mask_name(document.name),
                   mask_id(document.id_number), document.valid_until, document.photo,
                   document.photo_status, document.authenticity)


@dataclass(frozen=True)
class IdentifyView:
    step: IdStep
    summary: IdentitySummary | None = None
    problem: IdProblem | None = None
    detail: str = ""  # a device error code or an MRZ field name: never personal data
    actions: tuple[IdAction, ...] = ()
    camera_mrz: bool = False  # ENTER_MRZ: the camera is reading too (show its preview)


@dataclass(frozen=True)
class IdentifySettings:
    read_timeout_s: float = 60.0
    # How long the camera keeps looking for an MRZ; the keypad stays usable afterwards.
    mrz_scan_timeout_s: float = 60.0
    # A camera reading is used once this many frames gave the same text: an OCR slip that
    # still passes the check digits rarely repeats on the next frame.
    mrz_frames_agreeing: int = 2


class IdentifyFlow(Flow[IdentifyView]):
    def __init__(
        self,
        *,
        id_card: IdentityReader | None,
        smart_card: IdentityReader | None,
        audit: AuditSink,
        session_id: str,
        today: Callable[[], date],
        settings: IdentifySettings | None = None,
        camera: Camera | None = None,
        read_mrz: MrzTextReader | None = None,
    ) -> None:
        super().__init__(IdentifyView(IdStep.PRESENT_ID_CARD))
        self.id_card = id_card
        self.smart_card = smart_card
        self.camera = camera
        self.read_mrz = read_mrz
        self.audit = audit
        self.session_id = session_id
        self.today = today
        self.settings = settings or IdentifySettings()
        self._document: IdentityDocument | None = None
        self._access: MrzAccess | None = None
        # Set when the citizen switches document type while a read waits: the read that ends
        # as ``canceled`` then must not be shown as a cancelled journey.
        self._switching = threading.Event()
        self._stop_scan = threading.Event()
        self._access_from_camera = False
        self._camera_refused = False  # the chip refused a camera reading: type from now on

    @property
    def document(self) -> IdentityDocument | None:
        """The document read, once the step is ``identified``; None after ``wipe``."""
        return self._document

    # -- choosing the document ----------------------------------------------------------------
    def _usable(self, reader: IdentityReader | None) -> bool:
        return reader is not None and reader.status().usable

    def start(self) -> None:
        """Offer the ID card when its reader works, else go straight to the passport."""
        self._document = None
        if self._usable(self.id_card):
            self._read(self.id_card, None, IdStep.PRESENT_ID_CARD)  # type: ignore[arg-type]
        elif self._usable(self.smart_card):
            self._ask_mrz()
        else:
            self._fail(IdProblem.NO_READER)

    def _present_actions(self) -> tuple[IdAction, ...]:
        actions = (IdAction.USE_PASSPORT,) if self._usable(self.smart_card) else ()
        return (*actions, IdAction.HOME)

    def _mrz_actions(self) -> tuple[IdAction, ...]:
        actions = (IdAction.USE_ID_CARD,) if self._usable(self.id_card) else ()
        return (*actions, IdAction.HOME)

    def use_passport(self) -> None:
        """The citizen has a passport or travel permit: ask for its MRZ. Does not block: it
        ends the ID-card wait, whose worker then leaves the new view alone."""
        if not self._usable(self.smart_card):
            return
        self._switch()
        self._ask_mrz()

    def use_id_card(self) -> None:
        """Back from the MRZ keypad to the ID card (the UI then runs ``start``)."""
        self._switch()

    def _switch(self) -> None:
        if self._pending is not None:
            self._switching.set()
        self.cancel()

    # -- the MRZ --------------------------------------------------------------------------
    def _camera_mrz(self) -> bool:
        return (self.camera is not None and self.read_mrz is not None
                and not self._camera_refused and self.camera.status().usable)

    def _ask_mrz(self, detail: str = "") -> None:
        self._show(IdentifyView(IdStep.ENTER_MRZ, detail=detail, actions=self._mrz_actions(),
                                camera_mrz=self._camera_mrz()))

    def stop_mrz_scan(self) -> None:
        """The camera stops looking (the citizen is typing, or leaving); may come from any
        thread."""
        self._stop_scan.set()

    def submit_mrz(self, document_number: str, birth_date: str, expiry_date: str) -> None:
        """The three fields typed from the data page (birth and expiry as YYMMDD)."""
        self._stop_scan.set()
        try:
            access = access_from_fields(document_number.strip().upper(), birth_date.strip(),
                                        expiry_date.strip())
        except MrzError as bad:
            self._ask_mrz(str(bad))
            return
        self._read_chip(access, from_camera=False)

    def submit_mrz_text(self, text: str, *, from_camera: bool = False) -> None:
        """A whole MRZ (two or three lines)."""
        self._stop_scan.set()
        try:
            access = parse_mrz(text).access()
        except MrzError as bad:
            self._ask_mrz(str(bad))
            return
        self._read_chip(access, from_camera=from_camera)

    def scan_mrz(self) -> None:
        """Look for the data page in the camera's frames while the keypad waits; blocks until
        an MRZ is read (then opens the chip), the citizen types or leaves, or time runs out.
        Frames come from ``latest_frame``, never queued: the preview keeps its own pace."""
        if self.view.step is not IdStep.ENTER_MRZ or not self._camera_mrz():
            return
        assert self.camera is not None and self.read_mrz is not None
        self._stop_scan.clear()
        deadline = time.monotonic() + self.settings.mrz_scan_timeout_s
        last_sequence = -1
        seen: dict[str, int] = {}
        while (not self._stop_scan.is_set() and time.monotonic() < deadline
               and self.view.step is IdStep.ENTER_MRZ):
            frame = self.camera.latest_frame()
            if frame is None or frame.sequence == last_sequence:
                self._stop_scan.wait(0.05)
                continue
            last_sequence = frame.sequence
            text = self.read_mrz(frame.image)
            if text is None:
                continue
            seen[text] = seen.get(text, 0) + 1
            if seen[text] < self.settings.mrz_frames_agreeing:
                continue
            if self._stop_scan.is_set() or self.view.step is not IdStep.ENTER_MRZ:
                return  # the citizen typed or left while OCR ran
            self.audit.record("identify.mrz_from_camera", session_id=self.session_id,
                              device_id=self.camera.device_id)
            self.submit_mrz_text(text, from_camera=True)
            return

    def _read_chip(self, access: MrzAccess, *, from_camera: bool) -> None:
        if not self._usable(self.smart_card):
            self._fail(IdProblem.READER_FAILED, "smart_card")
            return
        self._access = access
        self._access_from_camera = from_camera
        self._read(self.smart_card, access, IdStep.PRESENT_CHIP)  # type: ignore[arg-type]

    # -- reading --------------------------------------------------------------------------
    def _read(self, reader: IdentityReader, access: MrzAccess | None, waiting: IdStep) -> None:
        self._switching.clear()
        actions = self._present_actions() if waiting is IdStep.PRESENT_ID_CARD \
            else (IdAction.ENTER_MRZ_AGAIN, IdAction.HOME)
        self._show(IdentifyView(waiting, actions=actions))

        def on_event(event: object) -> None:
            kind = getattr(event, "kind", None)
            if kind is EventKind.MEDIA_INSERTED and self.view.step is waiting:
                self._show(IdentifyView(IdStep.READING))

        unsubscribe = reader.subscribe(on_event)
        try:
            if reader.status().media is MediaState.PRESENT:
                self._show(IdentifyView(IdStep.READING))
            result = self._await(reader.read_identity(self.settings.read_timeout_s, access,
                                                      self.session_id))
        finally:
            unsubscribe()
        if result.ok and result.data is not None:
            self._identified(reader, result.data)
        elif result.completion is Completion.CANCELED:
            if self._switching.is_set():
                self._switching.clear()  # the new view is already on screen
            else:
                self._show(IdentifyView(IdStep.CANCELLED))
        elif result.completion is Completion.TIME_OUT:
            self._fail(IdProblem.TIMEOUT)
        else:
            code = result.error_code or str(result.completion)
            problem = _ERROR_PROBLEMS.get(code, IdProblem.READER_FAILED)
            if problem is IdProblem.ACCESS_DENIED and self._access_from_camera:
                self._camera_refused = True
                self._access = None
                self.audit.record("identify.problem", session_id=self.session_id,
                                  device_id=reader.device_id,
                                  detail={"problem": str(problem), "detail": CAMERA_MRZ_REFUSED})
                self._ask_mrz(CAMERA_MRZ_REFUSED)
                return
            self._fail(problem, code, device_id=reader.device_id)

    def _identified(self, reader: IdentityReader, document: IdentityDocument) -> None:
        self.audit.record("identify.read", session_id=self.session_id,
                          device_id=reader.device_id,
                          detail={"document_type": str(document.document_type),
                                  "authenticity": str(document.authenticity),
                                  "photo_status": str(document.photo_status)})
        if document.authenticity is Authenticity.FAILED:
            # Never used, never shown: the data cannot be trusted to be the citizen's.
            self._fail(IdProblem.NOT_GENUINE, document.authenticity_detail,
                       device_id=reader.device_id)
            return
        if document.valid_until is not None and document.valid_until < self.today():
            self._fail(IdProblem.EXPIRED, document.valid_until.isoformat(),
                       device_id=reader.device_id)
            return
        self._document = document
        self._show(IdentifyView(IdStep.IDENTIFIED, summary=IdentitySummary.of(document),
                                actions=(IdAction.CONTINUE, IdAction.HOME)))

    def retry(self) -> None:
        """Try again with the same kind of document (the chip with the same MRZ)."""
        if self._access is not None and self.view.problem is not IdProblem.ACCESS_DENIED:
            self._read_chip(self._access, from_camera=self._access_from_camera)
        else:
            self.start()

    def enter_mrz_again(self) -> None:
        self._switch()
        self._access = None
        self._ask_mrz()

    def cancel(self) -> None:
        self._stop_scan.set()
        super().cancel()

    def _fail(self, problem: IdProblem, detail: str = "", device_id: str | None = None) -> None:
        self.audit.record("identify.problem", session_id=self.session_id, device_id=device_id,
                          detail={"problem": str(problem), "detail": detail})
        self._show(IdentifyView(IdStep.FAILED, problem=problem, detail=detail,
                                actions=_PROBLEM_ACTIONS[problem]))

    def wipe(self) -> None:
        """Session end: the document, its photo and the MRZ are dropped."""
        self.cancel()
        self._document = None
        self._access = None
        self._access_from_camera = self._camera_refused = False
        with self._lock:
            self._view = IdentifyView(IdStep.CANCELLED)
