"""The identify step and the progress query as state machines, with the simulated readers
(the real readers run the same contract in tests/devices/ and tests/emrtd/)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime

import numpy as np
import pytest

from devices.contract import Completion
from devices.emrtd.mrz import Mrz, format_mrz
from devices.identity import (
    Authenticity,
    DocumentType,
    IdentityDocument,
    IdentityError,
    MrzAccess,
    PhotoStatus,
)
from devices.sim import SimCamera, SimIdCardReader, SimSmartCardReader
from flows.identify import (
    CAMERA_MRZ_REFUSED,
    IdAction,
    IdentifyFlow,
    IdentifySettings,
    IdProblem,
    IdStep,
)
from flows.ports import ApplicationStatus, ApplicationSummary
from flows.query import QueryFlow, QueryStep
from tests.fakes import TODAY, FakeBackOffice, ListAudit

ID_CARD = IdentityDocument(
    DocumentType.RESIDENT_ID, "110101199003074514", "王小明", "男", "CHN", date(1990, 3, 7),
    "北京市公安局东城分局", date(2020, 1, 1), None, address="北京市东城区测试胡同1号",
    ethnicity="汉", authenticity=Authenticity.VERIFIED)
PASSPORT = IdentityDocument(
    DocumentType.PASSPORT, "L898902C3", "ERIKSSON ANNA MARIA", "F", "UTO", date(1974, 8, 12),
    "UTO", None, date(2034, 4, 15), photo=b"\xff\xd8jpeg", photo_status=PhotoStatus.AVAILABLE,
    authenticity=Authenticity.NOT_VERIFIED)
PASSPORT_ACCESS = MrzAccess("L898902C3", "740812", "340415")


class Rig:
    def __init__(self, *, id_card: bool = True, smart_card: bool = True) -> None:
        self.id_card = SimIdCardReader(read_delay_s=0.05) if id_card else None
        self.smart_card = SimSmartCardReader(read_delay_s=0.05) if smart_card else None
        self.audit = ListAudit()
        self.backoffice = FakeBackOffice()
        self.flow = IdentifyFlow(id_card=self.id_card, smart_card=self.smart_card,
                                 audit=self.audit, session_id="sess-1", today=lambda: TODAY,
                                 settings=IdentifySettings(read_timeout_s=3))
        self.steps: list[IdStep] = []
        self.flow.on_change(lambda v: self.steps.append(v.step))

    def later(self, seconds: float, action: object, *args: object) -> None:
        threading.Timer(seconds, action, args).start()  # type: ignore[arg-type]


def test_id_card_is_read_shown_masked_and_kept_for_the_journey():
    rig = Rig()
    rig.later(0.1, rig.id_card.insert, ID_CARD)
    rig.flow.start()
    view = rig.flow.view
    assert view.step is IdStep.IDENTIFIED
    assert rig.steps[:3] == [IdStep.PRESENT_ID_CARD, IdStep.READING, IdStep.IDENTIFIED]
    assert view.summary.id_number == "1101**********4514"
    assert view.summary.name == "王**"
    assert view.summary.valid_until is None  # 长期
    assert view.summary.photo_status is PhotoStatus.UNAVAILABLE
    assert view.actions == (IdAction.CONTINUE, IdAction.HOME)
    assert rig.flow.document is ID_CARD
    # The audit log knows a document was read, not whose.
    assert "identify.read" in rig.audit.kinds()
    assert "110101199003074514" not in repr(rig.audit.rows)


def test_passport_needs_the_mrz_then_reads_the_chip():
    rig = Rig()
    rig.id_card.go_offline()  # no ID card reader working: straight to the passport
    rig.flow.start()
    assert rig.flow.view.step is IdStep.ENTER_MRZ
    assert IdAction.USE_ID_CARD not in rig.flow.view.actions
    rig.flow.submit_mrz("L898902C3", "7408l2", "340415")  # a typo: l for 1
    assert rig.flow.view.step is IdStep.ENTER_MRZ
    assert rig.flow.view.detail  # says what is wrong
    rig.later(0.1, rig.smart_card.insert, PASSPORT, PASSPORT_ACCESS)
    rig.flow.submit_mrz("l898902c3", "740812", "340415")
    view = rig.flow.view
    assert view.step is IdStep.IDENTIFIED
    assert view.summary.authenticity is Authenticity.NOT_VERIFIED
    assert view.summary.photo == b"\xff\xd8jpeg"


def test_wrong_mrz_is_access_denied_and_offers_to_type_again():
    rig = Rig()
    rig.smart_card.insert(PASSPORT, PASSPORT_ACCESS)
    rig.flow.submit_mrz("L898902C3", "740812", "350415")
    view = rig.flow.view
    assert (view.step, view.problem) == (IdStep.FAILED, IdProblem.ACCESS_DENIED)
    assert view.actions[0] is IdAction.ENTER_MRZ_AGAIN
    rig.flow.enter_mrz_again()
    assert rig.flow.view.step is IdStep.ENTER_MRZ


def test_switching_to_the_passport_ends_the_id_card_wait_without_cancelling_the_journey():
    rig = Rig()
    worker = threading.Thread(target=rig.flow.start)
    worker.start()
    while rig.flow.view.step is not IdStep.PRESENT_ID_CARD or rig.flow._pending is None:
        threading.Event().wait(0.01)
    assert IdAction.USE_PASSPORT in rig.flow.view.actions
    rig.flow.use_passport()
    worker.join(5)
    assert rig.flow.view.step is IdStep.ENTER_MRZ  # not "cancelled"
    assert IdStep.CANCELLED not in rig.steps


@pytest.mark.parametrize(("completion", "code", "problem"), [
    (Completion.USER_ERROR, IdentityError.MEDIA_REMOVED, IdProblem.CARD_REMOVED),
    (Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE, IdProblem.READER_FAILED),
    (Completion.HARDWARE_ERROR, IdentityError.LINK_ERROR, IdProblem.READER_FAILED),
    (Completion.INVALID_DATA, IdentityError.BAD_RECORD, IdProblem.BAD_RECORD),
    (Completion.HARDWARE_ERROR, IdentityError.READ_FAILED, IdProblem.READ_FAILED),
])
def test_each_reader_failure_has_its_own_problem(completion, code, problem):
    rig = Rig()
    rig.id_card.fail_next_read(completion, code)
    rig.id_card.insert(ID_CARD)
    rig.flow.start()
    view = rig.flow.view
    assert (view.step, view.problem, view.detail) == (IdStep.FAILED, problem, code)
    assert view.actions  # always a way back
    assert IdAction.HOME in view.actions


def test_invalid_card_and_timeout():
    rig = Rig()
    rig.id_card.insert_invalid()
    rig.flow.start()
    assert rig.flow.view.problem is IdProblem.INVALID_CARD
    rig.id_card.remove()
    rig.flow.settings = IdentifySettings(read_timeout_s=0.3)
    rig.flow.retry()
    assert rig.flow.view.problem is IdProblem.TIMEOUT
    assert rig.flow.view.actions[0] is IdAction.TRY_AGAIN


def test_a_document_failing_its_security_check_is_not_used():
    rig = Rig()
    rig.id_card.insert(replace(ID_CARD, authenticity=Authenticity.FAILED,
                               authenticity_detail="DG1 hash mismatch"))
    rig.flow.start()
    assert rig.flow.view.problem is IdProblem.NOT_GENUINE
    assert rig.flow.view.summary is None
    assert rig.flow.document is None


def test_an_expired_document_is_refused():
    rig = Rig()
    rig.id_card.insert(replace(ID_CARD, valid_until=date(2026, 11, 21)))
    rig.flow.start()
    assert (rig.flow.view.problem, rig.flow.view.detail) == (IdProblem.EXPIRED, "2026-11-21")


def test_no_reader_at_all():
    rig = Rig(id_card=False, smart_card=False)
    rig.flow.start()
    assert rig.flow.view.problem is IdProblem.NO_READER


def test_wipe_drops_the_document():
    rig = Rig()
    rig.id_card.insert(ID_CARD)
    rig.flow.start()
    assert rig.flow.document is not None
    rig.flow.wipe()
    assert rig.flow.document is None
    assert rig.flow.view.summary is None


def _application(number: str, status: ApplicationStatus) -> ApplicationSummary:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    return ApplicationSummary(number, "户籍证明开具", "公安分局", status, at, at)


def test_query_identifies_then_lists_the_applications():
    rig = Rig()
    rig.backoffice.applications[("residentId", ID_CARD.id_number)] = [
        _application("WH001", ApplicationStatus.READY),
        _application("WH002", ApplicationStatus.IN_REVIEW)]
    query = QueryFlow(identify=rig.flow, backoffice=rig.backoffice, audit=rig.audit,
                      session_id="sess-1")
    steps: list[QueryStep] = []
    query.on_change(lambda v: steps.append(v.step))
    rig.id_card.insert(ID_CARD)
    query.start()
    assert query.view.step is QueryStep.IDENTIFY
    assert query.view.identify.step is IdStep.IDENTIFIED
    query.lookup()
    assert query.view.step is QueryStep.RESULTS
    assert [a.tracking_number for a in query.view.applications] == ["WH001", "WH002"]
    assert steps[-2:] == [QueryStep.LOOKING_UP, QueryStep.RESULTS]
    query.wipe()
    assert rig.flow.document is None


def test_query_with_the_back_office_down_can_be_retried():
    rig = Rig()
    query = QueryFlow(identify=rig.flow, backoffice=rig.backoffice, audit=rig.audit,
                      session_id="sess-1")
    rig.id_card.insert(ID_CARD)
    query.start()
    rig.backoffice.down = True
    query.lookup()
    assert query.view.step is QueryStep.FAILED
    rig.backoffice.down = False
    query.lookup()
    assert query.view.step is QueryStep.RESULTS
    assert query.view.applications == ()


def test_lookup_before_identification_does_nothing():
    rig = Rig()
    query = QueryFlow(identify=rig.flow, backoffice=rig.backoffice, audit=rig.audit,
                      session_id="sess-1")
    query.lookup()
    assert rig.backoffice.calls == []


# -- the MRZ read by the camera -----------------------------------------------------------------

SPECIMEN = Mrz(format="TD3", document_code="P", issuing_state="UTO", surname="ERIKSSON",
               given_names="ANNA MARIA", document_number="L898902C3", nationality="UTO",
               birth_date="740812", sex="F", expiry_date="340415", optional_data="ZE184226B")
PASSPORT_MRZ = format_mrz(SPECIMEN)
# A misread whose check digits still pass (OCR can land on another valid date).
WRONG_MRZ = format_mrz(replace(SPECIMEN, expiry_date="350415"))
DATA_PAGE = np.full((48, 64, 3), 30, np.uint8)  # what the fake OCR "sees" as the data page


class CameraRig(Rig):
    def __init__(self, mrz_text: str) -> None:
        super().__init__()
        self.camera = SimCamera(width=64, height=48, fps=50)
        self.ocr_calls = 0

        def read_mrz(image: np.ndarray) -> str | None:
            self.ocr_calls += 1
            return mrz_text if int(image[0, 0, 0]) == 30 else None

        self.flow = IdentifyFlow(id_card=self.id_card, smart_card=self.smart_card,
                                 audit=self.audit, session_id="sess-1", today=lambda: TODAY,
                                 settings=IdentifySettings(read_timeout_s=3,
                                                           mrz_scan_timeout_s=5),
                                 camera=self.camera, read_mrz=read_mrz)
        self.flow.on_change(lambda v: self.steps.append(v.step))


def test_the_camera_reads_the_mrz_and_the_chip_opens():
    rig = CameraRig(PASSPORT_MRZ)
    rig.smart_card.insert(PASSPORT, PASSPORT_ACCESS)
    rig.flow.use_passport()
    assert rig.flow.view.camera_mrz  # the screen shows the preview next to the keypad
    rig.later(0.2, rig.camera.show_image, DATA_PAGE)
    rig.flow.scan_mrz()
    assert rig.flow.view.step is IdStep.IDENTIFIED
    assert rig.ocr_calls > 2  # frames before the page, then two frames that agree
    assert [row[0] for row in rig.audit.rows].count("identify.mrz_from_camera") == 1
    rig.camera.close()


def test_a_camera_reading_the_chip_refuses_is_tried_once_then_the_citizen_types():
    rig = CameraRig(WRONG_MRZ)
    rig.smart_card.insert(PASSPORT, PASSPORT_ACCESS)
    rig.camera.show_image(DATA_PAGE)
    rig.flow.use_passport()
    rig.flow.scan_mrz()
    view = rig.flow.view
    assert (view.step, view.detail) == (IdStep.ENTER_MRZ, CAMERA_MRZ_REFUSED)
    assert not view.camera_mrz  # the preview is gone: typing only
    calls = rig.ocr_calls
    rig.flow.scan_mrz()  # the UI asking again does not bring the camera back
    assert rig.ocr_calls == calls and rig.flow.view.step is IdStep.ENTER_MRZ
    rig.flow.submit_mrz("L898902C3", "740812", "340415")
    assert rig.flow.view.step is IdStep.IDENTIFIED
    rig.camera.close()


def test_typing_stops_the_camera_and_wipe_restores_it_for_the_next_citizen():
    rig = CameraRig(PASSPORT_MRZ)
    rig.smart_card.insert(PASSPORT, PASSPORT_ACCESS)
    rig.flow.use_passport()
    scanner = threading.Thread(target=rig.flow.scan_mrz)
    scanner.start()
    rig.flow.submit_mrz("L898902C3", "740812", "340415")
    scanner.join(2)
    assert not scanner.is_alive()
    assert rig.flow.view.step is IdStep.IDENTIFIED
    assert "identify.mrz_from_camera" not in [row[0] for row in rig.audit.rows]
    rig.flow.wipe()
    rig.flow.use_passport()
    assert rig.flow.view.camera_mrz
    rig.camera.close()


def test_a_camera_reading_needs_two_frames_that_agree():
    readings = iter([WRONG_MRZ, PASSPORT_MRZ, None, PASSPORT_MRZ])
    rig = CameraRig(PASSPORT_MRZ)
    rig.flow.read_mrz = lambda image: next(readings, None)
    rig.smart_card.insert(PASSPORT, PASSPORT_ACCESS)
    rig.flow.use_passport()
    rig.flow.scan_mrz()
    assert rig.flow.view.step is IdStep.IDENTIFIED  # the lone misread never reached the chip
    rig.camera.close()


def test_no_camera_preview_when_the_camera_is_down():
    rig = CameraRig(PASSPORT_MRZ)
    rig.camera.drop()
    rig.flow.use_passport()
    assert rig.flow.view.step is IdStep.ENTER_MRZ and not rig.flow.view.camera_mrz
    rig.camera.close()
