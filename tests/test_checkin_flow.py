"""The check-in journey as a state machine: simulated devices, in-memory back office."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backoffice.appointment_codes import (
    CodeFields,
    SigningKey,
    demo_signing_key,
    end_of_day,
    issue_code,
)
from devices.sim import SimBarcodeReader, SimReceiptPrinter
from flows.appointment_code import public_key_from_base64
from flows.checkin import Action, CheckInFlow, CheckInSettings, Problem, Step
from flows.ports import AppointmentNotFound, AppointmentStatus, QueueTicket
from kiosk.held_prints import HeldPrintStore
from kiosk.outbox import create_key
from tests.fakes import TODAY, FakeBackOffice, ListAudit, MemoryUsedCodes, appointment

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEMO = demo_signing_key()
TRUSTED = {"demo": public_key_from_base64(DEMO.public_key_base64)}
SIGNED_ID = "YY53010201000001"


def settings(**changes: object) -> CheckInSettings:
    base = CheckInSettings("ZZ-1", "530102-01", scan_timeout_s=5, print_timeout_s=5,
                           take_timeout_s=0.3, centre_name="五华区政务服务中心",
                           grace_before=timedelta(minutes=30),
                           grace_after=timedelta(minutes=15), trusted_keys=TRUSTED)
    return replace(base, **changes)  # type: ignore[arg-type]


def signed(key: SigningKey = DEMO, **changes: object) -> str:
    day = changes.pop("date", TODAY)
    assert isinstance(day, date)
    base = CodeFields(appointment_id=SIGNED_ID, centre_id="530102-01", service_item_code="SB001",
                      date=day, slot_start=time(9, 0), slot_end=time(9, 30),
                      expires_at=end_of_day(day, SHANGHAI), place="二楼 B区 5号窗",
                      service_name="社会保障卡申领", holder="王**")
    return issue_code(replace(base, **changes), key)  # type: ignore[arg-type]


class Rig:
    def __init__(self, tmp_path) -> None:
        self.scanner = SimBarcodeReader()
        self.printer = SimReceiptPrinter(output_dir=tmp_path, auto_take_s=None, print_delay_s=0)
        # The back office knows the signed code's appointment by its id, as the real one does.
        self.backoffice = FakeBackOffice({
            "APT-0001": appointment(),
            SIGNED_ID: appointment(SIGNED_ID, appointment_id=SIGNED_ID)})
        self.used = MemoryUsedCodes()
        self.audit = ListAudit()
        self.steps: list[Step] = []
        self.clock = datetime.combine(TODAY, time(9, 10), tzinfo=SHANGHAI)
        self.flow = CheckInFlow(
            scanner=self.scanner, printer=self.printer, backoffice=self.backoffice,
            used_codes=self.used, audit=self.audit, settings=settings(),
            session_id="sess-1", now=lambda: self.clock)
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


def test_a_ticket_that_fails_twice_is_kept_for_staff_with_its_reference_on_screen(tmp_path):
    rig = Rig(tmp_path / "prints")
    store = HeldPrintStore.open(tmp_path / "data", create_key(tmp_path / "outbox.key"))
    rig.flow.held = store
    rig.printer.jam()
    rig.flow.submit_code("APT-0001")
    rig.flow.confirm()
    assert rig.flow.view.staff_reference == "" and store.list() == []
    rig.flow.retry_print()
    view = rig.flow.view
    assert view.problem is Problem.PRINT_FAILED and view.actions == (Action.CALL_STAFF,
                                                                     Action.HOME)
    [held] = store.list()
    assert (held.reference, held.kind) == (view.staff_reference, "queue_ticket")
    rig.flow.wipe()
    rig.printer.clear_jam()
    assert store.reprint(held.reference, rig.printer, 5).ok  # staff, from maintenance mode
    assert "A001" in rig.printer.printed[-1].with_suffix(".txt").read_text(encoding="utf-8")


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


# --- signed codes ---------------------------------------------------------------------------

def test_signed_code_is_shown_from_the_code_without_asking_the_back_office(rig):
    rig.scan(signed() + "\r\n")
    view = rig.flow.view
    assert view.step is Step.CONFIRM
    assert rig.backoffice.calls == []
    summary = view.appointment
    assert (summary.service_name, summary.centre_name, summary.date, summary.slot) == (
        "社会保障卡申领", "五华区政务服务中心", TODAY, "09:00–09:30")
    assert (summary.applicant, summary.place) == ("王**", "二楼 B区 5号窗")
    assert ("checkin.code_verified", "sess-1",
            {"appointment_id": SIGNED_ID, "key_id": "demo"}) in rig.audit.rows


def test_signed_code_checks_in_by_appointment_id_and_prints(rig, tmp_path):
    rig.flow.submit_code(signed())
    rig.flow.confirm()
    assert rig.flow.view.step is Step.DONE
    assert [kind for kind, _ in rig.backoffice.calls] == ["check_in"]
    assert SIGNED_ID in rig.backoffice.keys
    assert rig.used.is_used(SIGNED_ID)
    printed = (tmp_path / "0001-queue_ticket.txt").read_text(encoding="utf-8")
    assert "A001" in printed and "二楼 B区 5号窗口" in printed


def test_a_name_that_came_unmasked_is_masked_on_screen(rig):
    rig.flow.submit_code(signed(holder="王秀英"))
    assert rig.flow.view.appointment.applicant == "王**"


def test_service_item_code_stands_in_for_a_missing_service_name(rig):
    rig.flow.submit_code(signed(service_name="", holder="", place=""))
    summary = rig.flow.view.appointment
    assert (summary.service_name, summary.applicant, summary.place) == ("SB001", "", "")


@pytest.mark.parametrize("make, problem, detail, actions", [
    (lambda: signed()[:61], Problem.MALFORMED_CODE, "truncated",
     (Action.SCAN_AGAIN, Action.HOME)),
    (lambda: "ZZ2:" + signed()[4:], Problem.MALFORMED_CODE, "unsupported_version",
     (Action.SCAN_AGAIN, Action.HOME)),
    (lambda: signed(SigningKey("demo", Ed25519PrivateKey.generate())), Problem.FORGED_CODE,
     "bad_signature", (Action.CALL_STAFF, Action.HOME)),
    (lambda: signed(SigningKey("k2027", Ed25519PrivateKey.generate())), Problem.UNKNOWN_KEY,
     "k2027", (Action.CALL_STAFF, Action.HOME)),
    (lambda: signed(centre_id="530111-01"), Problem.OTHER_CENTRE, "530111-01",
     (Action.SCAN_AGAIN, Action.HOME)),
    (lambda: signed(date=TODAY - timedelta(days=1)), Problem.EXPIRED_CODE, "2026-11-21 09:45",
     (Action.SCAN_AGAIN, Action.HOME)),
    (lambda: signed(slot_start=time(10, 0), slot_end=time(10, 30)), Problem.TOO_EARLY, "09:30",
     (Action.SCAN_AGAIN, Action.HOME)),
    (lambda: signed(expires_at=datetime(2026, 11, 22, 1, 0, tzinfo=UTC)), Problem.EXPIRED_CODE,
     "09:00", (Action.SCAN_AGAIN, Action.HOME)),
])
def test_each_refused_signed_code_has_its_own_problem(rig, make, problem, detail, actions):
    rig.flow.submit_code(make())
    view = rig.flow.view
    assert (view.step, view.problem, view.detail, view.actions) == (
        Step.FAILED, problem, detail, actions)
    assert rig.backoffice.calls == []  # decided offline
    assert view.appointment is None
    assert ("checkin.problem", "sess-1", {"problem": str(problem), "detail": detail}) \
        in rig.audit.rows


@pytest.mark.parametrize("clock, ok", [
    (time(8, 30), True), (time(8, 29, 59), False),  # grace before the slot
    (time(9, 45), True), (time(9, 45, 1), False),  # grace after it
])
def test_signed_code_grace_edges(rig, clock, ok):
    rig.clock = datetime.combine(TODAY, clock, tzinfo=SHANGHAI)
    rig.flow.submit_code(signed())
    assert (rig.flow.view.step is Step.CONFIRM) is ok


def test_signed_code_refused_when_the_kiosk_trusts_no_key(rig):
    rig.flow.settings = settings(trusted_keys={})
    rig.flow.submit_code(signed())
    assert rig.flow.view.problem is Problem.UNKNOWN_KEY


def test_signed_code_used_at_this_kiosk_is_refused_offline(rig):
    rig.flow.submit_code(signed())
    rig.flow.confirm()
    assert rig.flow.view.step is Step.DONE
    rig.flow.submit_code(signed())  # the same code again
    assert rig.flow.view.problem is Problem.ALREADY_USED
    assert [kind for kind, _ in rig.backoffice.calls] == ["check_in"]


def test_signed_code_used_at_another_kiosk_is_refused_at_check_in(rig):
    rig.backoffice.keys[SIGNED_ID] = "another-kiosks-key"
    rig.flow.submit_code(signed())
    assert rig.flow.view.step is Step.CONFIRM  # offline, this kiosk cannot know
    rig.flow.confirm()
    assert rig.flow.view.problem is Problem.ALREADY_USED
    assert not rig.used.is_used(SIGNED_ID)


def test_signed_code_the_back_office_does_not_know(rig):
    def unknown(code: str, **_kwargs: str) -> QueueTicket:
        raise AppointmentNotFound(code)

    rig.backoffice.check_in = unknown  # type: ignore[method-assign]
    rig.flow.submit_code(signed())
    rig.flow.confirm()
    assert rig.flow.view.problem is Problem.UNKNOWN_CODE


def test_back_office_down_after_a_verified_code_then_retry(rig):
    rig.backoffice.down = True
    rig.flow.submit_code(signed())
    assert rig.flow.view.step is Step.CONFIRM  # verifying needs no back office
    rig.flow.confirm()
    view = rig.flow.view
    assert view.problem is Problem.BACKOFFICE_UNAVAILABLE and Action.RETRY in view.actions
    assert view.appointment.place == "二楼 B区 5号窗"
    rig.backoffice.down = False
    rig.flow.retry()
    assert rig.flow.view.step is Step.DONE
    keys = [key for kind, key in rig.backoffice.calls if kind == "check_in"]
    assert len(keys) == 2 and keys[0] == keys[1] and rig.backoffice.issued == 1


def test_a_ticket_without_a_place_gets_the_codes_hint(rig, tmp_path):
    check_in = rig.backoffice.check_in

    def placeless(code: str, **kwargs: str) -> QueueTicket:
        return replace(check_in(code, **kwargs), floor="", area="", window="")

    rig.backoffice.check_in = placeless  # type: ignore[method-assign]
    rig.flow.submit_code(signed())
    rig.flow.confirm()
    assert rig.flow.view.ticket.area == "二楼 B区 5号窗"
    printed = (tmp_path / "0001-queue_ticket.txt").read_text(encoding="utf-8")
    assert "二楼 B区 5号窗" in printed


def test_a_new_code_after_a_refused_check_in_gets_a_new_key(rig):
    rig.backoffice.keys[SIGNED_ID] = "another-kiosks-key"
    rig.flow.submit_code(signed())
    rig.flow.confirm()
    assert rig.flow.view.problem is Problem.ALREADY_USED
    rig.flow.submit_code("APT-0001")
    rig.flow.confirm()
    assert rig.flow.view.step is Step.DONE
    keys = [key for kind, key in rig.backoffice.calls if kind == "check_in"]
    assert len(set(keys)) == 2


def test_signed_journey_audit_holds_no_name(rig):
    rig.flow.submit_code(signed(holder="王秀英"))
    rig.flow.confirm()
    rig.flow.submit_code(signed(centre_id="530111-01", holder="王秀英"))
    assert rig.flow.view.problem is Problem.OTHER_CENTRE
    assert "王" not in repr(rig.audit.rows)


def test_wipe_forgets_the_signed_appointment(rig):
    rig.flow.submit_code(signed())
    rig.flow.wipe()
    assert rig.flow._appointment is None and rig.flow._place == ""
