"""自助出件 against the real back office over loopback: an application is submitted, staff
approve it and mark it ready on the staff page, and the citizen prints it at the kiosk on the
simulated A4 printer (through a real cupsd's PDF queue: tests/printing/test_pdf_passthrough.py)."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import threading
import uuid
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.contract import CommandContext, CommandFailed, Completion, PaperState
from devices.identity import Authenticity, DocumentType, IdentityDocument
from devices.idnumber import check_digit
from devices.printer import Printable, PrintReceipt
from devices.sim import SimDocumentPrinter, SimIdCardReader
from flows.certificate import (
    CertAction,
    CertificateFlow,
    CertificateSettings,
    CertProblem,
    CertStep,
)
from flows.identify import IdentifyFlow, IdStep
from flows.ports import ApplicationStatus, BackOfficeUnavailable, ReadyResult
from flows.print_job import PrintAction, PrintProblem, PrintSettings, PrintStage
from kiosk.client import (
    Applicant,
    ApplicationSubmission,
    Commitment,
    HttpBackOffice,
    Material,
    submission_body,
)
from kiosk.held_prints import HeldPrintStore
from kiosk.outbox import create_key
from tests.fakes import ListAudit

PRINT = PrintSettings(print_timeout_s=30, take_timeout_s=5, unsensed_take_s=0.1)
_people = itertools.count(1)


# -- the back office's side ------------------------------------------------------------------
def new_person() -> str:
    """A fictional resident ID number no other test uses (valid check digit)."""
    first17 = f"11010119850612{next(_people):03d}"
    return first17 + check_digit(first17)


def submit(server, id_number: str, item: str = "HJ001") -> str:
    submission = ApplicationSubmission(
        centre_id=server.centre_id, kiosk_id="ZZ-T-CERT", session_id=f"s-{uuid.uuid4().hex[:8]}",
        service_item_code=item, applicant=Applicant("residentId", id_number, "测试申请人乙"),
        form={"用途": "入学"}, commitment=Commitment("v1", dt.datetime.now(dt.UTC)),
        materials=(Material("ID", "image/jpeg", b"\xff\xd8\xff\xe0fake-jpeg"),))
    answer = httpx.post(f"{server.api}/applications", timeout=10, trust_env=False,
                        json=submission_body(submission, f"ZZ-{uuid.uuid4().hex[:10]}"),
                        headers={"Idempotency-Key": f"k-{uuid.uuid4()}"})
    assert answer.status_code == 201, answer.text
    return answer.json()["tracking_number"]


def staff_marks_ready(server, number: str) -> None:
    """What a clerk does on the staff page: approve, then 出证：待领取."""
    staff_acts(server, number, "approve", "ready")


def staff_acts(server, number: str, *actions: str) -> None:
    """Staff decisions on the staff page (accept, review, approve, ready ...), in order."""
    with httpx.Client(base_url=server.url, trust_env=False, timeout=10,
                      headers={"Origin": server.url}) as staff:
        for action in actions:
            page = staff.get(f"/staff/applications/{number}").text
            path = f"/staff/applications/{number}/actions/{action}"
            token = re.search(rf'action="{re.escape(path)}"><input type="hidden" name="csrf" '
                              rf'value="([0-9a-f]+)"', page)
            assert token, f"no {action} form"
            done = staff.post(path, data={"csrf": token.group(1), "note": ""})
            assert done.status_code == 303, done.text


def result_pdf(server, number: str) -> bytes:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=10) as staff:
        answer = staff.get(f"/staff/applications/{number}/result")
        assert answer.status_code == 200
        return answer.content


def status_of(server, number: str) -> ApplicationStatus:
    answer = httpx.get(f"{server.api}/applications/progress/{number}", timeout=10,
                       trust_env=False)
    return ApplicationStatus(answer.json()["status"])


def ready_for(server, count: int) -> tuple[str, list[str]]:
    person = new_person()
    numbers = [submit(server, person) for _ in range(count)]
    for number in numbers:
        staff_marks_ready(server, number)
    return person, numbers


# -- the kiosk's side ------------------------------------------------------------------------------
def id_card(id_number: str) -> IdentityDocument:
    return IdentityDocument(DocumentType.RESIDENT_ID, id_number, "测试申请人乙", "女", "CHN",
                            date(1985, 6, 12), "测试市公安局测试分局", date(2020, 1, 1), None,
                            authenticity=Authenticity.VERIFIED)


class Desk:
    """The real client, with the network failing on cue."""

    def __init__(self, client: HttpBackOffice) -> None:
        self.client = client
        self.down = False
        self.confirm_failures = 0
        self.confirm_keys: list[str] = []
        self.media_type: str | None = None  # what the results claim to be, when set

    def ready_results(self, **kwargs: Any) -> list[ReadyResult]:
        if self.down:
            raise BackOfficeUnavailable("ready results: down")
        found = self.client.ready_results(**kwargs)
        if self.media_type is not None:
            found[:1] = [replace(r, media_type=self.media_type) for r in found[:1]]
        return found

    def confirm_collected(self, number: str, **kwargs: Any) -> dt.datetime:
        self.confirm_keys.append(kwargs["idempotency_key"])
        if self.confirm_failures:
            self.confirm_failures -= 1
            raise BackOfficeUnavailable("confirm collected: down")
        return self.client.confirm_collected(number, **kwargs)


class JamsMidJob(SimDocumentPrinter):
    """The paper jams inside the printer during the next ``jams`` jobs."""

    jams = 0

    def _print(self, ctx: CommandContext, document: Printable) -> PrintReceipt:
        if self.jams:
            self.jams -= 1
            self.jam()
            raise CommandFailed(Completion.HARDWARE_ERROR, "paperJammed", "jammed mid-job")
        return super()._print(ctx, document)


class Kiosk:
    def __init__(self, server, tmp_path: Path, person: str, printer=None, held=None) -> None:
        self.audit = ListAudit()
        self.client = HttpBackOffice(server.url, timeout_s=3)
        self.desk = Desk(self.client)
        self.reader = SimIdCardReader(read_delay_s=0.01)
        self.reader.insert(id_card(person))
        self.printer = printer or SimDocumentPrinter(output_dir=tmp_path / "a4",
                                                     print_delay_s=0, auto_take_s=0.05)
        self.session = f"sess-{uuid.uuid4().hex[:8]}"
        identify = IdentifyFlow(id_card=self.reader, smart_card=None, audit=self.audit,
                                session_id=self.session, today=date.today)
        self.flow = CertificateFlow(identify=identify, desk=self.desk, printer=self.printer,
                                    audit=self.audit,
                                    settings=CertificateSettings("ZZ-T-CERT", PRINT),
                                    session_id=self.session, held=held)

    def to_list(self) -> None:
        self.flow.start()
        assert self.flow.view.step is CertStep.IDENTIFY
        assert self.flow.view.identify.step is IdStep.IDENTIFIED
        self.flow.lookup()

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def kiosks(backoffice_server, tmp_path):
    made: list[Kiosk] = []

    def make(person: str, **options: Any) -> Kiosk:
        kiosk = Kiosk(backoffice_server, tmp_path / f"k{len(made)}", person, **options)
        made.append(kiosk)
        return kiosk

    yield make
    for kiosk in made:
        kiosk.flow.wipe()
        kiosk.close()


def test_prints_every_ready_certificate_and_confirms_each(backoffice_server, kiosks, caplog):
    caplog.set_level(logging.DEBUG)
    person, numbers = ready_for(backoffice_server, 2)
    kiosk = kiosks(person)
    kiosk.to_list()
    view = kiosk.flow.view
    assert view.step is CertStep.CHOOSE
    assert sorted(i.tracking_number for i in view.results) == sorted(numbers)
    assert all(i.printable and not i.printed for i in view.results)
    assert view.actions == (CertAction.PRINT, CertAction.PRINT_ALL, CertAction.HOME)

    steps: list[tuple[int, PrintStage]] = []
    kiosk.flow.on_change(lambda v: steps.append((v.position, v.print.stage))
                         if v.print else None)
    kiosk.flow.print_all()
    assert kiosk.flow.view.step is CertStep.DONE
    assert all(i.printed for i in kiosk.flow.view.results)
    assert [s for s in dict.fromkeys(steps)] == [
        (1, PrintStage.PRINTING), (1, PrintStage.TAKE), (1, PrintStage.DONE),
        (2, PrintStage.PRINTING), (2, PrintStage.TAKE), (2, PrintStage.DONE)]
    # What came out is the back office's document, byte for byte, in the order listed.
    listed = [i.tracking_number for i in view.results]
    assert [p.read_bytes() for p in kiosk.printer.printed] == [
        result_pdf(backoffice_server, n) for n in listed]
    assert [status_of(backoffice_server, n) for n in numbers] == [ApplicationStatus.COLLECTED] * 2
    assert kiosk.audit.kinds().count("certificate.collected") == 2
    assert kiosk.client.ready_results(id_number=person, document_type="residentId",
                                      session_id="x") == []

    kiosk.flow.wipe()
    assert kiosk.flow.view.step is CertStep.CANCELLED
    assert kiosk.flow.identify.document is None and kiosk.flow._results == {}
    assert person not in caplog.text and "测试申请人乙" not in caplog.text
    assert person not in repr(kiosk.audit.rows)


def test_nothing_ready_is_a_result_not_a_failure(backoffice_server, kiosks):
    person = new_person()
    submit(backoffice_server, person)  # submitted, not ready
    kiosk = kiosks(person)
    kiosk.to_list()
    assert kiosk.flow.view.step is CertStep.NONE_READY
    assert kiosk.flow.view.actions == (CertAction.HOME,)


def test_a_printer_without_paper_is_refused_before_the_citizen_identifies(backoffice_server,
                                                                          kiosks):
    kiosk = kiosks(new_person())
    kiosk.printer.run_out_after(0)
    kiosk.flow.start()
    view = kiosk.flow.view
    assert (view.step, view.problem, view.detail) == (CertStep.FAILED,
                                                      CertProblem.PRINTER_UNAVAILABLE, "paperOut")
    assert view.actions == (CertAction.CALL_STAFF, CertAction.HOME)
    assert kiosk.flow.identify.view.step is IdStep.PRESENT_ID_CARD  # never asked for the card
    assert kiosk.flow.identify.document is None


def test_a_printer_that_fails_after_the_list_is_refused_before_printing(backoffice_server,
                                                                        kiosks):
    person, [number] = ready_for(backoffice_server, 1)
    kiosk = kiosks(person)
    kiosk.to_list()
    kiosk.printer.open_door()
    kiosk.flow.print_one(number)
    assert (kiosk.flow.view.problem, kiosk.flow.view.detail) == (
        CertProblem.PRINTER_UNAVAILABLE, "doorOpen")
    assert kiosk.printer.printed == [] and kiosk.desk.confirm_keys == []
    assert status_of(backoffice_server, number) is ApplicationStatus.READY


def test_a_jam_offers_one_reprint_then_staff_get_the_certificate(backoffice_server, kiosks,
                                                                 tmp_path):
    person, [number] = ready_for(backoffice_server, 1)
    store = HeldPrintStore.open(tmp_path / "data", create_key(tmp_path / "outbox.key"))
    printer = JamsMidJob(output_dir=tmp_path / "a4", print_delay_s=0, auto_take_s=0.05)
    printer.jams = 2
    kiosk = kiosks(person, printer=printer, held=store)
    kiosk.to_list()
    kiosk.flow.print_one(number)
    view = kiosk.flow.view
    assert view.step is CertStep.PRINTING and view.current.tracking_number == number
    assert (view.print.stage, view.print.problem, view.print.detail) == (
        PrintStage.FAILED, PrintProblem.PRINT_FAILED, "paperJammed")
    assert PrintAction.RETRY_PRINT in view.print.actions

    printer.clear_jam()  # staff came; it jams again
    kiosk.flow.retry_print()
    view = kiosk.flow.view
    assert view.print.problem is PrintProblem.STAFF_REPRINT
    assert view.print.actions == (PrintAction.CALL_STAFF, PrintAction.HOME)
    [held] = store.list()
    assert held.reference == view.print.staff_reference and held.kind == "certificate"
    assert store.document(held.reference).pdf == result_pdf(backoffice_server, number)
    # Not collected: it is still ready at the back office, for staff to hand over.
    assert kiosk.desk.confirm_keys == []
    assert status_of(backoffice_server, number) is ApplicationStatus.READY


def test_a_jam_cleared_before_the_reprint_ends_in_collection(backoffice_server, kiosks, tmp_path):
    person, [number] = ready_for(backoffice_server, 1)
    printer = JamsMidJob(output_dir=tmp_path / "a4", print_delay_s=0, auto_take_s=0.05)
    printer.jams = 1
    kiosk = kiosks(person, printer=printer)
    kiosk.to_list()
    kiosk.flow.print_one(number)
    assert kiosk.flow.view.print.problem is PrintProblem.PRINT_FAILED
    printer.clear_jam()
    assert printer.status().paper is PaperState.FULL
    kiosk.flow.retry_print()
    assert kiosk.flow.view.step is CertStep.DONE
    assert len(printer.printed) == 1
    assert status_of(backoffice_server, number) is ApplicationStatus.COLLECTED


def test_an_unconfirmed_collection_does_not_hold_up_the_citizen(backoffice_server, kiosks):
    person, [number] = ready_for(backoffice_server, 1)
    kiosk = kiosks(person)
    kiosk.desk.confirm_failures = 2
    kiosk.to_list()
    kiosk.flow.print_one(number)
    assert kiosk.flow.view.step is CertStep.DONE
    assert len(kiosk.printer.printed) == 1
    # Tried twice with one key; then staff are told, by number and key.
    assert len(kiosk.desk.confirm_keys) == 2 and len(set(kiosk.desk.confirm_keys)) == 1
    unconfirmed = [d for k, _, d in kiosk.audit.rows if k == "certificate.collect_unconfirmed"]
    assert unconfirmed == [{"tracking_number": number,
                            "idempotency_key": kiosk.desk.confirm_keys[0]}]
    assert status_of(backoffice_server, number) is ApplicationStatus.READY


def test_a_confirmation_lost_once_is_sent_again_with_the_same_key(backoffice_server, kiosks):
    person, [number] = ready_for(backoffice_server, 1)
    kiosk = kiosks(person)
    kiosk.desk.confirm_failures = 1
    kiosk.to_list()
    kiosk.flow.print_one(number)
    assert kiosk.flow.view.step is CertStep.DONE
    assert len(set(kiosk.desk.confirm_keys)) == 1 and len(kiosk.desk.confirm_keys) == 2
    assert status_of(backoffice_server, number) is ApplicationStatus.COLLECTED
    assert "certificate.collect_unconfirmed" not in kiosk.audit.kinds()


def test_the_back_office_down_at_lookup_can_be_retried(backoffice_server, kiosks):
    person, [number] = ready_for(backoffice_server, 1)
    kiosk = kiosks(person)
    kiosk.desk.down = True
    kiosk.to_list()
    view = kiosk.flow.view
    assert (view.step, view.problem) == (CertStep.FAILED, CertProblem.BACKOFFICE_UNAVAILABLE)
    assert view.actions == (CertAction.RETRY, CertAction.HOME)
    kiosk.desk.down = False
    kiosk.flow.retry()
    assert kiosk.flow.view.step is CertStep.CHOOSE
    assert [i.tracking_number for i in kiosk.flow.view.results] == [number]


def test_a_result_that_is_not_a_pdf_is_left_to_the_window(backoffice_server, kiosks):
    person, numbers = ready_for(backoffice_server, 2)
    kiosk = kiosks(person)
    kiosk.desk.media_type = "image/tiff"
    kiosk.to_list()
    items = kiosk.flow.view.results
    odd, fine = items[0], items[1]
    assert not odd.printable and fine.printable
    assert kiosk.flow.view.actions == (CertAction.PRINT, CertAction.HOME)  # one printable left
    kiosk.flow.print_one(odd.tracking_number)
    assert kiosk.flow.view.problem is CertProblem.NOTHING_PRINTABLE
    assert kiosk.printer.printed == []


def test_a_session_ending_on_the_take_screen_leaves_the_result_confirmed(backoffice_server,
                                                                         kiosks, tmp_path):
    person, [number] = ready_for(backoffice_server, 1)
    printer = SimDocumentPrinter(output_dir=tmp_path / "a4", print_delay_s=0, auto_take_s=None)
    kiosk = kiosks(person, printer=printer)
    kiosk.to_list()
    on_take = threading.Event()
    kiosk.flow.on_change(lambda v: on_take.set() if v.print and v.print.stage is
                         PrintStage.TAKE else None)
    worker = threading.Thread(target=kiosk.flow.print_one, args=(number,))
    worker.start()
    assert on_take.wait(10)
    kiosk.flow.wipe()  # the citizen walked away; the countdown ended the session
    worker.join(10)
    assert not worker.is_alive()
    assert kiosk.flow.view.step is CertStep.CANCELLED
    assert status_of(backoffice_server, number) is ApplicationStatus.COLLECTED
    # The certificate still lies at the exit: staff are told to look.
    assert "print.not_taken" in kiosk.audit.kinds()
