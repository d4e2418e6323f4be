"""打印办件进度: the progress query prints one application, or all shown, with its history,
against the real back office over loopback and the simulated receipt printer."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devices.sim import SimIdCardReader, SimReceiptPrinter
from flows.identify import IdentifyFlow, IdStep
from flows.ports import ApplicationSummary, BackOfficeUnavailable
from flows.print_job import PrintAction, PrintProblem, PrintSettings, PrintStage
from flows.query import ProgressPrinting, QueryFlow, QueryStep
from kiosk.client import HttpBackOffice
from kiosk.held_prints import HeldPrintStore
from kiosk.outbox import create_key
from tests.fakes import ListAudit
from tests.test_certificate_flow import id_card, new_person, staff_acts, submit

SHANGHAI = ZoneInfo("Asia/Shanghai")
QUERIED_AT = datetime(2026, 11, 24, 8, 30, tzinfo=SHANGHAI)
PRINT = PrintSettings(print_timeout_s=10, take_timeout_s=5, unsensed_take_s=0.1)


class Progress:
    """The real client's ``application_progress``; down on cue."""

    def __init__(self, client: HttpBackOffice) -> None:
        self.client = client
        self.down = False
        self.asked: list[str] = []

    def application_progress(self, number: str) -> ApplicationSummary:
        self.asked.append(number)
        if self.down:
            raise BackOfficeUnavailable("application progress: down")
        return self.client.application_progress(number)


class Kiosk:
    def __init__(self, server, tmp_path: Path, person: str, *, printing: bool = True,
                 held: HeldPrintStore | None = None) -> None:
        self.audit = ListAudit()
        self.client = HttpBackOffice(server.url, timeout_s=3)
        self.progress = Progress(self.client)
        self.printer = SimReceiptPrinter(output_dir=tmp_path / "roll", print_delay_s=0,
                                         auto_take_s=0.05)
        reader = SimIdCardReader(read_delay_s=0.01)
        reader.insert(id_card(person))
        session = f"sess-{uuid.uuid4().hex[:8]}"
        identify = IdentifyFlow(id_card=reader, smart_card=None, audit=self.audit,
                                session_id=session, today=date.today)
        self.flow = QueryFlow(
            identify=identify, backoffice=self.client, audit=self.audit, session_id=session,
            printing=ProgressPrinting(self.printer, "测试市测试区政务服务中心",
                                      lambda: QUERIED_AT, self.progress, held, PRINT)
            if printing else None)

    def to_results(self) -> None:
        self.flow.start()
        assert self.flow.identify.view.step is IdStep.IDENTIFIED
        self.flow.lookup()
        assert self.flow.view.step is QueryStep.RESULTS

    def printed_text(self, index: int = -1) -> str:
        return self.printer.printed[index].with_suffix(".txt").read_text(encoding="utf-8")


@pytest.fixture
def person_with_two(backoffice_server) -> tuple[str, str, str]:
    """A person with one approved application (four history steps) and one just submitted."""
    person = new_person()
    approved = submit(backoffice_server, person, "HJ001")
    staff_acts(backoffice_server, approved, "accept", "review", "approve")
    waiting = submit(backoffice_server, person, "SB001")
    return person, approved, waiting


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
        kiosk.client.close()


def test_prints_one_application_with_its_history(person_with_two, kiosks):
    person, approved, waiting = person_with_two
    kiosk = kiosks(person)
    kiosk.to_results()
    assert kiosk.flow.view.can_print
    assert all(not a.history for a in kiosk.flow.view.applications)  # the search has none
    stages: list[PrintStage] = []
    kiosk.flow.on_change(lambda v: stages.append(v.print.stage) if v.print else None)
    kiosk.flow.print_progress(approved)
    assert kiosk.flow.view.step is QueryStep.RESULTS
    assert kiosk.flow.view.printed == (approved,)
    assert list(dict.fromkeys(stages)) == [PrintStage.PRINTING, PrintStage.TAKE,
                                           PrintStage.DONE]
    assert kiosk.progress.asked == [approved]
    text = kiosk.printed_text()
    assert approved in text and waiting not in text
    assert "户籍证明开具" in text and "当前状态：已办结" in text
    rows = [line for line in text.splitlines() if "公安分局" in line]
    assert [row.split()[2] for row in rows] == ["已提交", "已受理", "审批中", "已办结"]
    assert "测*****" in text and "测试申请人乙" not in text and person not in text
    assert "查询时间：2026-11-24 08:30" in text


def test_prints_all_shown_as_one_slip(person_with_two, kiosks):
    person, approved, waiting = person_with_two
    kiosk = kiosks(person)
    kiosk.to_results()
    kiosk.flow.print_progress()
    assert len(kiosk.printer.printed) == 1
    text = kiosk.printed_text()
    assert approved in text and waiting in text and "社会保障卡申领" in text
    assert sorted(kiosk.progress.asked) == sorted([approved, waiting])
    assert set(kiosk.flow.view.printed) == {approved, waiting}
    assert "尚无办理记录" not in text

    kiosk.flow.print_progress(waiting)  # a second tap is a second print, not a duplicate
    assert len(kiosk.printer.printed) == 2


def test_without_the_history_the_slip_says_only_what_is_certain(person_with_two, kiosks):
    person, approved, _waiting = person_with_two
    kiosk = kiosks(person)
    kiosk.to_results()
    kiosk.progress.down = True
    kiosk.flow.print_progress(approved)
    rows = [line for line in kiosk.printed_text().splitlines() if "公安分局" in line]
    assert [row.split()[2] for row in rows] == ["已提交", "已办结"]
    assert ("query.history_unavailable",
            {"tracking_number": approved, "error": "backoffice_unavailable"}) in [
        (k, d) for k, _, d in kiosk.audit.rows]


def test_a_printer_fault_offers_a_reprint_then_staff_and_the_way_back(person_with_two, kiosks,
                                                                      tmp_path):
    person, approved, _waiting = person_with_two
    store = HeldPrintStore.open(tmp_path / "data", create_key(tmp_path / "outbox.key"))
    kiosk = kiosks(person, held=store)
    kiosk.to_results()
    kiosk.printer.run_out_after(0)
    kiosk.flow.lookup()
    assert not kiosk.flow.view.can_print  # the screen greys 打印 out
    kiosk.flow.print_progress(approved)
    view = kiosk.flow.view
    assert view.step is QueryStep.PRINTING
    assert (view.print.stage, view.print.problem) == (PrintStage.FAILED,
                                                      PrintProblem.PRINTER_UNAVAILABLE)
    assert view.print.actions == (PrintAction.RETRY_PRINT, PrintAction.CALL_STAFF,
                                  PrintAction.BACK, PrintAction.HOME)
    kiosk.printer.refill()
    kiosk.flow.retry_print()
    assert kiosk.flow.view.step is QueryStep.RESULTS and kiosk.flow.view.printed == (approved,)
    assert approved in kiosk.printed_text()

    kiosk.printer.go_offline()
    kiosk.flow.print_progress(approved)
    kiosk.flow.retry_print()
    view = kiosk.flow.view
    assert view.print.problem is PrintProblem.STAFF_REPRINT
    [held] = store.list()
    assert held.reference == view.print.staff_reference and held.kind == "progress_query"
    kiosk.flow.back()
    assert kiosk.flow.view.step is QueryStep.RESULTS


def test_a_query_without_printing_only_shows(person_with_two, kiosks):
    person, approved, _waiting = person_with_two
    kiosk = kiosks(person, printing=False)
    kiosk.to_results()
    assert not kiosk.flow.view.can_print
    kiosk.flow.print_progress(approved)
    assert kiosk.flow.view.step is QueryStep.RESULTS and kiosk.printer.printed == []
