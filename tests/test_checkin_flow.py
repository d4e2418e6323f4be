"""The check-in journey as a state machine: simulated devices, in-memory back office."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from devices.sim import SimBarcodeReader, SimReceiptPrinter
from flows.checkin import Action, CheckInFlow, CheckInSettings, Problem, Step
from flows.ports import AppointmentStatus
from tests.fakes import TODAY, FakeBackOffice, ListAudit, MemoryUsedCodes, appointment


class Rig:
    def __init__(self, tmp_path) -> None:
        self.scanner = SimBarcodeReader()
        self.printer = SimReceiptPrinter(output_dir=tmp_path, auto_take_s=None, print_delay_s=0)
        self.backoffice = FakeBackOffice({"APT-0001": appointment()})
        self.used = MemoryUsedCodes()
        self.audit = ListAudit()
        self.steps: list[Step] = []
        self.flow = CheckInFlow(
            scanner=self.scanner, printer=self.printer, backoffice=self.backoffice,
            used_codes=self.used, audit=self.audit,
            settings=CheckInSettings("ZZ-1", "530102-01", scan_timeout_s=5, print_timeout_s=5,
                                     take_timeout_s=0.3),
            session_id="sess-1", today=lambda: TODAY)
        self.flow.on_change(lambda v: self.steps.append(v.step))

    def scan(self, payload: str | None) -> None:
        if payload is not None:
            threading.Timer(0.05, self.scanner.show, (payload,)).start()
        self.flow.scan()


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


def test_happy_path_prints_the_ticket_and_records_the_code(rig, tmp_path):
    rig.scan("ZZAPT:apt-0001\r\n")
    view = rig.flow.view
    assert view.step is Step.CONFIRM
    assert view.appointment.applicant == "张**"  # masked on screen
    assert view.appointment.slot == "09:00–09:30"
    rig.flow.confirm()
    assert rig.flow.view.step is Step.DONE
    assert rig.steps[-4:] == [Step.CHECKING_IN, Step.PRINTING, Step.TAKE_TICKET, Step.DONE]
    printed = (tmp_path / "0001-queue_ticket.txt").read_text(encoding="utf-8")
    assert "A001" in printed and "二楼 B区 5号窗口" in printed
    assert "张" not in printed  # the ticket carries no name
    assert rig.used.is_used("id-APT-0001")
    assert "checkin.done" in rig.audit.kinds()


def test_ticket_taken_ends_the_wait_early(rig):
    rig.flow.settings = CheckInSettings("ZZ-1", "530102-01", 5, 5, take_timeout_s=30)
    rig.scan("APT-0001")
    threading.Timer(0.5, rig.printer.take).start()
    rig.flow.confirm()
    assert rig.flow.view.step is Step.DONE
    assert ("checkin.done", "sess-1", {"ticket": "A001", "taken": True}) in rig.audit.rows


@pytest.mark.parametrize("payload, reason", [
    ("https://evil.example/x", "web_link"),
    ("", "empty"),
    ("APT\x00001", "control_characters"),
    ("二维码", "not_an_appointment_code"),
])
def test_malformed_codes_never_reach_the_back_office(rig, payload, reason):
    rig.flow.submit_code(payload)
    view = rig.flow.view
    assert (view.problem, view.detail) == (Problem.MALFORMED_CODE, reason)
    assert Action.SCAN_AGAIN in view.actions
    assert rig.backoffice.calls == []


@pytest.mark.parametrize("changes, problem, detail", [
    ({"date": TODAY + timedelta(days=1)}, Problem.OTHER_DAY, "2026-11-23"),
    ({"date": TODAY - timedelta(days=1)}, Problem.OTHER_DAY, "2026-11-21"),
    ({"centre_id": "530103-01", "centre_name": "盘龙区政务服务中心"}, Problem.OTHER_CENTRE,
     "盘龙区政务服务中心"),
    ({"status": AppointmentStatus.CHECKED_IN}, Problem.ALREADY_USED, ""),
    ({"status": AppointmentStatus.CANCELLED}, Problem.APPOINTMENT_CANCELLED, ""),
])
def test_appointments_that_cannot_be_checked_in_here(rig, changes, problem, detail):
    rig.backoffice.appointments["APT-0001"] = appointment(**changes)
    rig.flow.submit_code("APT-0001")
    assert (rig.flow.view.problem, rig.flow.view.detail) == (problem, detail)
    assert ("check_in", ) not in [c[:1] for c in rig.backoffice.calls]


def test_unknown_code(rig):
    rig.flow.submit_code("APT-9999")
    assert rig.flow.view.problem is Problem.UNKNOWN_CODE


def test_code_used_at_this_kiosk_is_refused_even_if_back_office_says_booked(rig):
    rig.used.mark_used("id-APT-0001", "earlier")
    rig.flow.submit_code("APT-0001")
    assert rig.flow.view.problem is Problem.ALREADY_USED


def test_back_office_down_then_back_retries_with_the_same_key(rig):
    rig.flow.submit_code("APT-0001")
    rig.backoffice.down = True
    rig.flow.confirm()
    view = rig.flow.view
    assert view.problem is Problem.BACKOFFICE_UNAVAILABLE and Action.RETRY in view.actions
    rig.backoffice.down = False
    rig.flow.retry()
    assert rig.flow.view.step is Step.DONE
    keys = [key for kind, key in rig.backoffice.calls if kind == "check_in"]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert rig.backoffice.issued == 1


def test_lookup_while_back_office_down_then_retry(rig):
    rig.backoffice.down = True
    rig.flow.submit_code("APT-0001")
    assert rig.flow.view.problem is Problem.BACKOFFICE_UNAVAILABLE
    rig.backoffice.down = False
    rig.flow.retry()
    assert rig.flow.view.step is Step.CONFIRM


def test_paper_out_keeps_the_ticket_on_screen_and_offers_one_reprint(rig, tmp_path):
    rig.printer.run_out_after(0)
    rig.flow.submit_code("APT-0001")
    rig.flow.confirm()
    view = rig.flow.view
    assert view.problem is Problem.PRINT_FAILED and view.detail == "paperOut"
    assert view.ticket is not None and view.ticket.number == "A001"
    assert view.actions == (Action.RETRY_PRINT, Action.CALL_STAFF, Action.HOME)
    rig.flow.retry_print()  # still no paper
    assert rig.flow.view.problem is Problem.PRINT_FAILED
    assert Action.RETRY_PRINT not in rig.flow.view.actions  # reprint offered once only
    assert rig.used.is_used("id-APT-0001")  # the check-in itself stands
    assert list(tmp_path.glob("*.txt")) == []


def test_reprint_after_refill_prints_once(rig, tmp_path):
    rig.printer.run_out_after(0)
    rig.flow.submit_code("APT-0001")
    rig.flow.confirm()
    rig.printer.refill()
    rig.flow.retry_print()
    assert rig.flow.view.step is Step.DONE
    assert len(list(tmp_path.glob("*.txt"))) == 1


def test_scan_timeout_and_cancel(rig):
    rig.flow.settings = CheckInSettings("ZZ-1", "530102-01", scan_timeout_s=0.2)
    rig.scan(None)
    assert rig.flow.view.problem is Problem.SCAN_TIMEOUT
    threading.Timer(0.1, rig.flow.cancel).start()
    rig.flow.settings = CheckInSettings("ZZ-1", "530102-01", scan_timeout_s=10)
    rig.scan(None)
    assert rig.flow.view.step is Step.CANCELLED


def test_scanner_offline(rig):
    rig.scanner.go_offline()
    rig.scan(None)
    view = rig.flow.view
    assert (view.problem, view.detail) == (Problem.SCANNER_FAILED, "offline")
    assert Action.CALL_STAFF in view.actions


def test_wipe_forgets_everything(rig):
    rig.flow.submit_code("APT-0001")
    rig.flow.wipe()
    assert rig.flow.view.appointment is None and rig.flow._appointment is None
    rig.flow.confirm()  # nothing to confirm any more
    assert not [c for c in rig.backoffice.calls if c[0] == "check_in"]


def test_audit_never_holds_the_name(rig):
    rig.scan("APT-0001")
    rig.flow.confirm()
    assert "张" not in repr(rig.audit.rows)
