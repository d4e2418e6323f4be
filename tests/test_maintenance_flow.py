"""Maintenance mode as a flow: the PIN against a real scrypt hash, the lock that survives a
restart, counters from a real audit log, self-tests through the simulated devices (a test page
really printed, a failing device's error), documents kept for staff in a real sealed store
reprinted on the simulated printers or discarded, out of service kept on disk, no personal data
out."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devices.contract import Completion, DeviceState
from devices.identity import MrzAccess
from devices.printer import Field, Heading, Media, PdfDocument, PrintDocument
from devices.sim import (
    SimBarcodeReader,
    SimCamera,
    SimDocumentPrinter,
    SimIdCardReader,
    SimReceiptPrinter,
    SimSmartCardReader,
)
from devices.sim.identity import load_demo_card
from flows.maintenance import (
    PRINTED,
    STATE_FILE,
    HeldAction,
    HeldReport,
    Interface,
    KioskFacts,
    MaintenanceFlow,
    MaintenanceRecord,
    MaintenanceSettings,
    MaintenanceStateFile,
    Panel,
    SelfTest,
    Step,
    read_manifest,
)
from kiosk.app import _audit_events
from kiosk.config import hash_pin, verify_pin
from kiosk.held_prints import HeldPrintStore
from kiosk.metrics import (
    activity_from_audit,
    last_delivery_from_disk,
    outbox_report,
    start_metrics,
)
from kiosk.privacy import mask_text
from kiosk.storage.audit import AuditLog
from kiosk.storage.db import open_database
from tests.fakes import FakeBackOffice

PIN = "135790"
PIN_HASH = hash_pin(PIN, log2_n=10)  # the provisioned format; cheap parameters for tests
SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2030, 3, 4, 10, 0, tzinfo=SHANGHAI).timestamp()
DEMO_CARD = Path(__file__).resolve().parents[1] / "assets/sim/demo-id-card.json"
DEMO_PASSPORT = Path(__file__).resolve().parents[1] / "assets/sim/demo-passport.json"


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Rig:
    """A flow over real storage and simulated devices; ``flow()`` makes a new instance on the
    same files, as a restarted app would."""

    def __init__(self, tmp_path: Path, devices: dict | None = None, *,
                 pin_hash: str | None = PIN_HASH,
                 journal: object = lambda _n: None,
                 manifest: tuple[Path, ...] | None = None,
                 held: HeldPrintStore | None = None) -> None:
        self.tmp = tmp_path
        self.held = held
        self.clock = Clock(START)  # wall clock: the lock's end, record times
        self.idle = Clock(0.0)
        self.db = open_database(tmp_path / "kiosk.db")
        self.audit = AuditLog(self.db, clock=lambda: datetime.fromtimestamp(self.clock.t, UTC))
        self.devices = devices if devices is not None else {}
        listener = _audit_events(self.audit)  # device events reach the audit log as in the app
        for device in self.devices.values():
            device.subscribe(listener)
        self.backoffice = FakeBackOffice()
        self.restarts: list[str] = []
        self.pin_hash = pin_hash
        self.journal = journal
        self.manifest = manifest or (tmp_path / "no-manifest.json",)
        self.settings = MaintenanceSettings(lockout_s=600, idle_s=120, print_timeout_s=5,
                                            read_timeout_s=3, capture_timeout_s=3,
                                            scan_timeout_s=3)

    def flow(self) -> MaintenanceFlow:
        pin_hash = self.pin_hash
        return MaintenanceFlow(
            pin_check=(lambda pin: verify_pin(pin, pin_hash)) if pin_hash else None,
            state=MaintenanceStateFile(self.tmp / STATE_FILE), audit=self.audit,
            devices=self.devices,
            facts=KioskFacts("ZZ-TEST-7", "测试中心", "http://127.0.0.1:9", "9.9.9"),
            tally=lambda since: activity_from_audit(self.tmp / "kiosk.db", since),
            outbox=lambda: None, backoffice_health=self.backoffice.health, mask=mask_text,
            restart=lambda: self.restarts.append("restart"), settings=self.settings,
            manifest_paths=self.manifest, journal=self.journal,  # type: ignore[arg-type]
            network=lambda: ((Interface("eth0", True, ("192.0.2.7",)),), True),
            held=self.held, now=lambda: datetime.fromtimestamp(self.clock.t, SHANGHAI),
            clock=self.clock, idle_clock=self.idle)

    def opened(self) -> MaintenanceFlow:
        flow = self.flow()
        flow.open()
        assert flow.enter_pin(PIN)
        assert flow.view.step is Step.MENU
        return flow

    def kinds(self) -> list[str]:
        return [r.kind for r in reversed(self.audit.recent(1000))]

    def close(self) -> None:
        for device in self.devices.values():
            device.close()
        self.db.close()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


def printers(tmp_path: Path) -> dict:
    return {"receipt_printer": SimReceiptPrinter(output_dir=tmp_path / "roll", print_delay_s=0,
                                                 auto_take_s=None),
            "document_printer": SimDocumentPrinter(output_dir=tmp_path / "a4", print_delay_s=0,
                                                   auto_take_s=None)}


# --- the PIN and the lock ---------------------------------------------------------------------


def test_the_right_pin_opens_the_menu_and_a_wrong_one_counts_down(rig):
    flow = rig.flow()
    flow.open()
    assert flow.view.step is Step.PIN
    assert not flow.enter_pin("000000")
    assert (flow.view.step, flow.view.attempts_left) == (Step.PIN, 4)
    assert flow.enter_pin(PIN)
    assert flow.view.step is Step.MENU
    assert rig.kinds() == ["maintenance.pin_failed", "maintenance.opened"]
    # A right PIN starts the count again.
    flow.close()
    flow = rig.flow()
    flow.open()
    assert not flow.enter_pin("000000")
    assert flow.view.attempts_left == 4


def test_five_wrong_pins_lock_the_pad_even_after_a_restart(rig):
    flow = rig.flow()
    flow.open()
    for n in range(4):
        assert not flow.enter_pin(f"99999{n}")
        assert flow.view.attempts_left == 4 - n
    assert not flow.enter_pin("999995")
    assert flow.view.step is Step.LOCKED
    until = flow.view.locked_until
    assert until is not None and until.timestamp() == START + 600
    kinds = rig.kinds()
    assert kinds.count("maintenance.pin_failed") == 5 and kinds[-1] == "maintenance.locked"
    assert rig.audit.recent(1)[0].detail == {"failures": 5, "seconds": 600}

    # The app restarts (a new flow on the same data folder): still locked, and the right PIN
    # is refused without being checked.
    again = rig.flow()
    again.open()
    assert again.view.step is Step.LOCKED
    assert not again.enter_pin(PIN)
    assert again.view.step is Step.LOCKED
    assert rig.kinds()[-1] == "maintenance.pin_refused"


def test_leaving_the_pad_while_the_pin_is_checked(rig):
    flow = rig.flow()

    def check_then_leave(pin: str) -> bool:
        flow.close("exit")  # the technician tapped Cancel while scrypt ran
        return verify_pin(pin, PIN_HASH)

    flow._pin_check = check_then_leave
    flow.open()
    assert not flow.enter_pin(PIN)
    assert flow.view.step is Step.CLOSED  # a right PIN opened nothing behind the closed pad
    for _ in range(5):
        flow.open()
        assert not flow.enter_pin("000000")
    assert rig.kinds().count("maintenance.pin_failed") == 5  # wrong ones still count
    assert "maintenance.opened" not in rig.kinds()
    flow.open()
    assert flow.view.step is Step.LOCKED


def test_the_lock_ends_after_its_time_with_a_fresh_count(rig):
    flow = rig.flow()
    flow.open()
    for _ in range(5):
        flow.enter_pin("246802")
    assert flow.view.step is Step.LOCKED
    rig.clock.t += 599
    flow.tick()
    assert flow.view.step is Step.LOCKED
    rig.clock.t += 1
    flow.tick()
    assert flow.view.step is Step.PIN
    assert not flow.enter_pin("246802")
    assert flow.view.attempts_left == 4  # five more tries, not one
    assert flow.enter_pin(PIN)


def test_a_clock_set_back_does_not_lengthen_the_lock(rig):
    flow = rig.flow()
    flow.open()
    for _ in range(5):
        flow.enter_pin("246802")
    rig.clock.t -= 86400  # someone set the wall clock back a day
    again = rig.flow()
    again.open()
    assert again.view.step is Step.LOCKED
    assert again.view.locked_until.timestamp() == rig.clock.t + 600


def test_no_provisioned_pin_means_no_maintenance(tmp_path):
    rig = Rig(tmp_path, pin_hash=None)
    try:
        flow = rig.flow()
        flow.open()
        assert flow.view.step is Step.NOT_CONFIGURED
        assert not flow.enter_pin(PIN)
        assert flow.view.step is Step.NOT_CONFIGURED
    finally:
        rig.close()


def test_menu_actions_are_refused_before_the_pin(tmp_path):
    rig = Rig(tmp_path, printers(tmp_path))
    try:
        flow = rig.flow()
        flow.open()
        assert flow.self_test("receipt_printer") is None
        flow.take_out_of_service("Under maintenance")
        flow.restart()
        assert flow.out_of_service_message() is None
        assert rig.restarts == []
        assert rig.devices["receipt_printer"].printed == []
    finally:
        rig.close()


def test_idle_menu_closes_itself(rig):
    flow = rig.opened()
    rig.idle.t += 119
    flow.touch()
    rig.idle.t += 119
    flow.tick()
    assert flow.view.step is Step.MENU  # a touch restarted the wait
    rig.idle.t += 1
    flow.tick()
    assert (flow.view.step, flow.view.closed_reason) == (Step.CLOSED, "timeout")
    assert rig.audit.recent(1)[0].kind == "maintenance.closed"
    assert rig.audit.recent(1)[0].detail == {"reason": "timeout"}


def test_a_damaged_state_file_starts_afresh(tmp_path):
    path = tmp_path / STATE_FILE
    path.write_text("{not json", encoding="utf-8")
    state = MaintenanceStateFile(path)
    assert state.read().failures == 0 and state.out_of_service_message() is None
    path.write_text(json.dumps({"failures": "many"}), encoding="utf-8")
    assert MaintenanceStateFile(path).read().failures == 0


# --- devices and self-tests -------------------------------------------------------------------


def test_test_page_prints_on_each_printer_and_counts_its_pages(tmp_path):
    rig = Rig(tmp_path, printers(tmp_path))
    try:
        flow = rig.opened()
        roll = flow.self_test("receipt_printer")
        a4 = flow.self_test("document_printer")
        assert roll is not None and roll.ok and roll.test is SelfTest.PRINT_PAGE
        assert a4 is not None and a4.ok and a4.detail["pages"] == 1
        text = (tmp_path / "roll" / "0001-test_page.txt").read_text(encoding="utf-8")
        assert "打印机自检页" in text and "ZZ-TEST-7" in text and "receipt_printer" in text
        assert f"ZIZHU-TEST:ZZ-TEST-7:receipt_printer:{roll.detail['check']}" in text
        assert (tmp_path / "a4" / "0001-test_page.pdf").exists()
        assert flow.view.results["receipt_printer"] == roll and flow.view.testing is None
        tests = [r for r in rig.audit.recent(100) if r.kind == "maintenance.self_test"]
        assert {r.device_id for r in tests} == {"receipt_printer", "document_printer"}
        assert all(r.detail["ok"] for r in tests)
        flow.show_panel(Panel.COUNTERS)
        assert flow.view.counters.today.pages == 2
        assert flow.view.counters.today.tickets == 0  # a test page is no ticket
    finally:
        rig.close()


def test_a_failing_printer_reports_its_error(tmp_path):
    rig = Rig(tmp_path, printers(tmp_path))
    try:
        printer = rig.devices["receipt_printer"]
        printer.run_out_after(0)
        flow = rig.opened()
        result = flow.self_test("receipt_printer")
        assert result is not None and not result.ok
        assert (result.completion, result.error_code) == (str(Completion.HARDWARE_ERROR),
                                                          "paperOut")
        line = next(d for d in flow.view.devices if d.name == "receipt_printer")
        assert line.paper == "out" and not line.usable
        assert line.last_error == "hardwareError/paperOut"
        assert line.last_error_at == datetime.fromtimestamp(START, SHANGHAI)
        printer.refill()
        printer.go_offline()
        result = flow.self_test("receipt_printer")
        assert (result.completion, result.error_code) == ("deviceNotReady", "offline")
        assert printer.printed == []
    finally:
        rig.close()


def test_card_read_shows_type_and_masked_number_only(tmp_path):
    card, _ = load_demo_card(str(DEMO_CARD))
    rig = Rig(tmp_path, {"id_card": SimIdCardReader(read_delay_s=0)})
    try:
        rig.devices["id_card"].insert(card)
        flow = rig.opened()
        result = flow.self_test("id_card")
        assert result is not None and result.ok and result.test is SelfTest.READ_CARD
        assert dict(result.detail) == {"document_type": "residentId",
                                       "number": "5301**********0026"}
        shown = repr(flow.view)
        assert card.id_number not in shown and card.name not in shown
        assert card.address not in shown
        assert card.id_number not in json.dumps([r.detail for r in rig.audit.recent(100)])
    finally:
        rig.close()


def test_card_reader_faults_and_a_locked_chip(tmp_path):
    card, access = load_demo_card(str(DEMO_PASSPORT))
    reader, chip = SimIdCardReader(read_delay_s=0), SimSmartCardReader(read_delay_s=0)
    rig = Rig(tmp_path, {"id_card": reader, "smart_card": chip})
    try:
        reader.insert(load_demo_card(str(DEMO_CARD))[0])
        reader.fail_next_read(Completion.HARDWARE_ERROR, "samFailure")
        flow = rig.opened()
        result = flow.self_test("id_card")
        assert not result.ok and result.error_code == "samFailure"
        assert isinstance(access, MrzAccess)
        chip.insert(card, access)  # a passport: its chip wants the MRZ before it says more
        result = flow.self_test("smart_card")
        assert result.ok and result.error_code == "securityFail"
        assert result.detail == {"chip_answered": 1}
        chip.remove()
        flow.settings = replace(flow.settings, read_timeout_s=0.5)
        result = flow.self_test("smart_card")  # nothing laid on the reader
        assert not result.ok and result.completion == "timeOut"
    finally:
        rig.close()


def test_camera_and_scanner_self_tests(tmp_path):
    camera, scanner = SimCamera(fps=50), SimBarcodeReader()
    rig = Rig(tmp_path, {"camera": camera, "barcode": scanner})
    try:
        flow = rig.opened()
        shot = flow.self_test("camera")
        assert shot.ok and dict(shot.detail) == {"width": 640, "height": 480}
        scanner.show("T-FRESH-001")
        scan = flow.self_test("barcode")
        assert scan.ok and dict(scan.detail) == {"characters": 11}
        assert "T-FRESH-001" not in repr(flow.view)
        camera.drop()
        shot = flow.self_test("camera")
        assert not shot.ok and shot.error_code == str(DeviceState.NO_DEVICE)
        line = next(d for d in flow.view.devices if d.name == "camera")
        assert line.state == "noDevice" and line.cameras == (("main", "inoperative"),)
    finally:
        rig.close()


def test_closing_cancels_a_running_self_test(tmp_path):
    import threading

    rig = Rig(tmp_path, {"id_card": SimIdCardReader(read_delay_s=0)})
    rig.settings = MaintenanceSettings(read_timeout_s=30)
    try:
        flow = rig.opened()
        results = []
        worker = threading.Thread(target=lambda: results.append(flow.self_test("id_card")))
        worker.start()
        for _ in range(1000):  # until the read has started
            if flow.view.testing is not None:
                break
            worker.join(0.01)
        flow.close("exit")
        worker.join(10)
        assert not worker.is_alive()
        assert results[0].completion == "canceled"
        assert flow.view.step is Step.CLOSED  # the late result did not reopen the menu
    finally:
        rig.close()


# --- documents kept for staff (待补打) -------------------------------------------------------------

MINIMAL_PDF = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
               b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
               b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj\n"
               b"trailer << /Root 1 0 R >>\n%%EOF\n")
TRACKING = "ZZ-2030-000457"  # in the documents' meta: never on the panel


def held_store(tmp_path: Path) -> HeldPrintStore:
    from kiosk.outbox import create_key

    return HeldPrintStore.open(tmp_path / "data", create_key(tmp_path / "keys" / "outbox.key"))


def certificate(key: str = "result:ZZ1:s-1") -> PdfDocument:
    return PdfDocument("certificate", key, "户籍证明", MINIMAL_PDF, media=Media.A4,
                       meta={"tracking_number": TRACKING})


def progress_slip() -> PrintDocument:
    return PrintDocument(kind="progress_query", job_key="progress:s-2:1", title="办件进度",
                         blocks=(Heading("办件进度"), Field("办件编号", TRACKING)),
                         meta={"tracking_number": TRACKING})


@pytest.fixture
def held_rig(tmp_path):
    r = Rig(tmp_path, printers(tmp_path), held=held_store(tmp_path))
    yield r
    r.close()


def test_kept_documents_reprint_on_the_printer_for_their_paper_and_leave_the_list(held_rig):
    rig = held_rig
    store = rig.held
    a4_ref = store.hold(certificate(), reason="paperJammed", session_id="s-1")
    roll_ref = store.hold(progress_slip(), reason="paperOut", session_id="s-2")
    flow = rig.opened()
    flow.show_panel(Panel.HELD)
    report = flow.view.held
    assert flow.view.panel is Panel.HELD and report is not None and report.kept
    lines = {line.reference: line for line in report.documents}
    assert set(lines) == {a4_ref, roll_ref}
    a4, roll = lines[a4_ref], lines[roll_ref]
    assert (a4.kind, a4.title, a4.media, a4.reason, a4.printer) == (
        "certificate", "户籍证明", "A4", "paperJammed", "document_printer")
    assert (roll.kind, roll.title, roll.media, roll.reason, roll.printer) == (
        "progress_query", "办件进度", "roll80mm", "paperOut", "receipt_printer")
    assert a4.expires_at - a4.held_at == timedelta(hours=72)
    assert TRACKING not in repr(flow.view)  # the meta's numbers stay in the store

    outcome = flow.reprint_held(a4_ref)
    assert outcome is not None and outcome.ok and outcome.action is HeldAction.REPRINT
    assert (outcome.printer, outcome.pages, outcome.duplicate) == ("document_printer", 1, False)
    a4_printer, roll_printer = rig.devices["document_printer"], rig.devices["receipt_printer"]
    assert [p.read_bytes() for p in a4_printer.printed] == [MINIMAL_PDF]  # as it was kept
    assert roll_printer.printed == []
    assert [d.reference for d in flow.view.held.documents] == [roll_ref]
    assert flow.view.held_results[a4_ref] == outcome and flow.view.reprinting is None

    outcome = flow.reprint_held(roll_ref)
    assert outcome is not None and outcome.ok and outcome.printer == "receipt_printer"
    text = roll_printer.printed[0].with_suffix(".txt").read_text(encoding="utf-8")
    assert "办件进度" in text and TRACKING in text
    assert flow.view.held.documents == () and store.list() == []

    reprinted = [r for r in rig.audit.recent(100) if r.kind == "maintenance.held_reprinted"]
    assert [(r.device_id, dict(r.detail)) for r in reversed(reprinted)] == [
        ("document_printer", {"reference": a4_ref, "kind": "certificate", "ok": True,
                              "error": ""}),
        ("receipt_printer", {"reference": roll_ref, "kind": "progress_query", "ok": True,
                             "error": ""})]
    printed = [r for r in rig.audit.recent(100) if r.kind == PRINTED]
    assert {r.session_id for r in printed} == {"s-1", "s-2"}  # in the citizens' trails
    assert TRACKING not in json.dumps([r.detail for r in rig.audit.recent(100)])
    flow.show_panel(Panel.COUNTERS)
    assert flow.view.counters.today.certificates == 1  # the certificate came out at last
    assert flow.view.counters.today.pages == 2


def test_a_reprint_on_a_jammed_printer_keeps_the_document_and_shows_why(held_rig):
    rig = held_rig
    reference = rig.held.hold(certificate(), reason="paperOut", session_id="s-1")
    printer = rig.devices["document_printer"]
    printer.jam()
    flow = rig.opened()
    flow.show_panel(Panel.HELD)
    outcome = flow.reprint_held(reference)
    assert outcome is not None and not outcome.ok
    assert (outcome.completion, outcome.error) == (str(Completion.HARDWARE_ERROR), "paperJammed")
    assert flow.view.held_results[reference].error == "paperJammed"
    assert [d.reference for d in flow.view.held.documents] == [reference]  # still kept
    assert printer.printed == [] and len(rig.held.list()) == 1
    last = rig.audit.recent(1)[0]
    assert (last.kind, dict(last.detail)) == (
        "maintenance.held_reprinted",
        {"reference": reference, "kind": "certificate", "ok": False, "error": "paperJammed"})
    assert PRINTED not in rig.kinds()

    printer.clear_jam()  # staff pulled the paper out
    outcome = flow.reprint_held(reference)
    assert outcome is not None and outcome.ok
    assert len(printer.printed) == 1 and flow.view.held.documents == ()
    assert flow.view.held_results[reference].ok


def test_discard_removes_a_kept_document(held_rig):
    rig = held_rig
    reference = rig.held.hold(progress_slip(), reason="paperOut", session_id="s-2")
    kept = rig.held.hold(certificate(), reason="paperOut", session_id="s-1")
    flow = rig.opened()
    flow.show_panel(Panel.HELD)
    outcome = flow.discard_held(reference)
    assert outcome is not None and outcome.ok and outcome.action is HeldAction.DISCARD
    assert (outcome.kind, outcome.title) == ("progress_query", "办件进度")
    assert [d.reference for d in flow.view.held.documents] == [kept]
    assert [h.reference for h in rig.held.list()] == [kept]
    assert not (rig.held.folder / f"{reference}.held").exists()
    last = rig.audit.recent(1)[0]
    assert (last.kind, dict(last.detail)) == (
        "maintenance.held_discarded", {"reference": reference, "kind": "progress_query"})
    again = flow.discard_held(reference)  # a second tap from a stale list
    assert again is not None and not again.ok and again.error == "notKept"
    assert rig.kinds().count("maintenance.held_discarded") == 1
    assert rig.devices["receipt_printer"].printed == []


def test_no_printer_for_the_paper_or_no_store(tmp_path):
    store = held_store(tmp_path)
    # The A4 printer under another name still takes A4; nothing here takes a roll.
    a4 = SimDocumentPrinter("a4_printer", output_dir=tmp_path / "a4", print_delay_s=0,
                            auto_take_s=None)
    rig = Rig(tmp_path, {"a4_printer": a4}, held=store)
    try:
        slip_ref = store.hold(progress_slip(), reason="paperOut", session_id="s-2")
        cert_ref = store.hold(certificate(), reason="paperOut", session_id="s-1")
        flow = rig.flow()
        flow.open()
        assert flow.reprint_held(cert_ref) is None  # not before the PIN
        assert flow.discard_held(cert_ref) is None and len(store.list()) == 2
        flow = rig.opened()
        flow.show_panel(Panel.HELD)
        printers_for = {d.reference: d.printer for d in flow.view.held.documents}
        assert printers_for == {slip_ref: None, cert_ref: "a4_printer"}
        outcome = flow.reprint_held(slip_ref)
        assert outcome is not None and not outcome.ok and outcome.error == "noDevice"
        assert len(store.list()) == 2
        assert flow.reprint_held(cert_ref).ok and len(a4.printed) == 1
    finally:
        rig.close()
    bare = Rig(tmp_path / "bare")
    try:
        flow = bare.opened()
        flow.show_panel(Panel.HELD)
        assert flow.view.held == HeldReport(kept=False)  # the panel says so
        assert flow.reprint_held("0123456789abcdef") is None
    finally:
        bare.close()


# --- counters ---------------------------------------------------------------------------------


def test_counters_match_the_audit_records(rig):
    audit = rig.audit

    def printed(kind: str, pages: int, duplicate: bool = False) -> None:
        audit.record(PRINTED, session_id="s", device_id="receipt_printer",
                     detail={"kind": kind, "pages": pages, "duplicate": duplicate,
                             "attempt": 1})

    rig.clock.t = START - 86400  # yesterday
    audit.record("session.end", session_id="a", detail={"reason": "completed"})
    printed("queue_ticket", 1)
    printed("certificate", 3)
    rig.clock.t = START
    for reason in ("completed", "timeout", "cancelled"):
        audit.record("session.end", session_id=reason, detail={"reason": reason})
    printed("queue_ticket", 1)
    printed("queue_ticket", 0, duplicate=True)  # nothing new came out
    printed("application_receipt", 1)
    printed("certificate", 2)
    audit.record("print.failed", detail={"kind": "queue_ticket", "error": "paperOut"})
    flow = rig.opened()
    flow.show_panel(Panel.COUNTERS)
    report = flow.view.counters
    assert report is not None and flow.view.panel is Panel.COUNTERS
    assert (report.today.sessions, report.today.tickets, report.today.receipts,
            report.today.certificates, report.today.pages) == (3, 1, 1, 1, 4)
    assert (report.total.sessions, report.total.tickets, report.total.receipts,
            report.total.certificates, report.total.pages) == (4, 2, 1, 2, 8)


# --- out of service, restart ------------------------------------------------------------------


def test_out_of_service_is_kept_until_back_in_service(rig):
    flow = rig.opened()
    flow.take_out_of_service("Printer being repaired")
    assert flow.view.out_of_service == "Printer being repaired"
    # What the attract screen asks, after a restart too.
    assert MaintenanceStateFile(rig.tmp / STATE_FILE).out_of_service_message() == \
        "Printer being repaired"
    assert rig.flow().out_of_service_message() == "Printer being repaired"
    flow.back_in_service()
    assert MaintenanceStateFile(rig.tmp / STATE_FILE).out_of_service_message() is None
    assert rig.kinds()[-2:] == ["maintenance.out_of_service", "maintenance.in_service"]


def test_restart_closes_and_asks_for_the_restart(rig):
    flow = rig.opened()
    flow.restart()
    assert rig.restarts == ["restart"]
    assert (flow.view.step, flow.view.closed_reason) == (Step.CLOSED, "restart")
    assert rig.kinds()[-2:] == ["maintenance.restart", "maintenance.closed"]


# --- network, software, log -------------------------------------------------------------------


def test_network_panel_asks_the_back_office(rig):
    flow = rig.opened()
    flow.show_panel(Panel.NETWORK)
    network = flow.view.network
    assert network.backoffice_ok and network.default_route
    assert network.interfaces == (Interface("eth0", True, ("192.0.2.7",)),)
    rig.backoffice.down = True
    flow.show_panel(Panel.NETWORK)
    assert not flow.view.network.backoffice_ok


def test_software_panel_reads_the_image_manifest(tmp_path):
    manifest = tmp_path / "image-manifest.json"
    release = tmp_path / "image-release"
    rig = Rig(tmp_path, manifest=(manifest, release))
    try:
        flow = rig.opened()
        flow.show_panel(Panel.SOFTWARE)
        software = flow.view.software
        assert software.version == "9.9.9"
        assert software.manifest is None and software.manifest_problem is None  # not an image
        # What image-build/build.sh writes into the root.
        release.write_text("IMAGE_VERSION=0.1.0+g0123456789ab\nGIT_DIRTY=no\n"
                           "BUILD_DATE=2030-03-01T08:00:00Z\nDEBIAN_SUITE=bookworm\n",
                           encoding="utf-8")
        flow.show_panel(Panel.SOFTWARE)
        assert flow.view.software.manifest_path == str(release)
        assert dict(flow.view.software.manifest) == {
            "IMAGE_VERSION": "0.1.0+g0123456789ab", "GIT_DIRTY": "no",
            "BUILD_DATE": "2030-03-01T08:00:00Z", "DEBIAN_SUITE": "bookworm"}
        manifest.write_text(json.dumps({
            "image": {"version": "2030.03.1", "slot": "A", "debian": {"suite": "bookworm"}},
            "packages": [{"name": "cups"}, {"name": "pcscd"}], "sha256": "ab" * 32}),
            encoding="utf-8")
        flow.show_panel(Panel.SOFTWARE)  # the JSON manifest comes first where there is one
        assert dict(flow.view.software.manifest) == {
            "image.version": "2030.03.1", "image.slot": "A", "image.debian": "1 entries",
            "packages": "2 entries", "sha256": "ab" * 32}
        manifest.write_text("[1, 2", encoding="utf-8")
        assert read_manifest(manifest) == (None, "not JSON")
        flow.show_panel(Panel.SOFTWARE)
        assert flow.view.software.manifest_problem == "not JSON"
        release.write_text("garbage\n", encoding="utf-8")
        assert read_manifest(release) == (None, "not KEY=VALUE lines")
    finally:
        rig.close()


def test_log_lines_come_masked_from_the_journal_or_else_from_the_audit_log(tmp_path):
    journal = ["2030-03-04T10:00:00+0800 kiosk[42]: read 530102198503150026 at 13812345678"]
    rig = Rig(tmp_path, journal=lambda n: journal)
    try:
        flow = rig.opened()
        flow.show_panel(Panel.LOG)
        assert flow.view.log_source == "journal"
        assert flow.view.log_lines == ("2030-03-04T10:00:00+0800 kiosk[42]: read "
                                       "5301**********0026 at 138****5678",)
        rig.journal = lambda n: None  # no journal here, or the kiosk user may not read it
        flow = rig.opened()
        flow.show_panel(Panel.LOG)
        assert flow.view.log_source == "audit"
        assert flow.view.log_lines[-1] == "03-04 10:00:00 maintenance.opened"
        assert any("maintenance.closed reason=exit" not in line
                   for line in flow.view.log_lines)
    finally:
        rig.close()


# --- the app's side: outbox report, metrics ---------------------------------------------------


def test_outbox_report_has_the_last_delivery_from_disk(tmp_path):
    from kiosk.outbox import OutboxStore, create_key
    from tests.outbox.kiosk_driver import submission

    data = tmp_path / "data"
    delivered = datetime(2030, 3, 4, 1, 2, tzinfo=UTC)
    store = OutboxStore.open(data, create_key(data / "outbox.key"), clock=lambda: delivered)
    try:
        assert last_delivery_from_disk(data / "outbox.db") is None
        store.enqueue(submission("m-1", "ZZ-1"))
        store.enqueue(submission("m-2", "ZZ-1"))
        head = store.next_pending()
        store.mark_delivered(head.row_id, "BJ-1")
        kiosk = SimpleNamespace(outbox=store, outbox_worker=None,
                                config=SimpleNamespace(kiosk=SimpleNamespace(data_dir=data)))
        report = outbox_report(kiosk)  # type: ignore[arg-type]
        assert (report.pending, report.quarantined, report.last_delivery_at) == (1, 0,
                                                                                 delivered)
    finally:
        store.close()


def test_the_app_keeps_a_metrics_file_with_out_of_service(tmp_path):
    from kiosk.app import build_kiosk
    from kiosk.config import load_config

    config = tmp_path / "kiosk.toml"
    config.write_text(f"""
[kiosk]
id = "ZZ-M-1"
centre_id = "C-1"
data_dir = "{tmp_path / 'data'}"
[backoffice]
url = "http://127.0.0.1:9"
[devices.receipt_printer]
driver = "sim"
output_dir = "{tmp_path / 'prints'}"
[devices.barcode]
driver = "sim"
""", encoding="utf-8")
    kiosk = build_kiosk(load_config(config), backoffice=FakeBackOffice())
    try:
        out = tmp_path / "metrics" / "zizhu_kiosk.prom"

        def figures() -> dict:
            writer = start_metrics(kiosk, out, interval_s=3600)
            writer.stop()  # the first write happens before the first wait
            return {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for f in text_string_to_metric_families(out.read_text())
                    for s in f.samples}

        first = figures()
        assert first[("zizhu_out_of_service", ())] == 0
        assert first[("zizhu_app_state", (("state", "available"),))] == 1
        assert first[("zizhu_device_state", (("device", "barcode"), ("state", "online")))] == 1
        MaintenanceStateFile(tmp_path / "data" / STATE_FILE).write(
            MaintenanceRecord(out_of_service="Under maintenance"))
        second = figures()
        assert second[("zizhu_out_of_service", ())] == 1
        assert second[("zizhu_app_state", (("state", "unavailable"),))] == 1
    finally:
        kiosk.close()


def test_every_panel_fills_its_figures(rig):
    flow = rig.opened()
    for panel in Panel:
        flow.show_panel(panel)
        assert flow.view.panel is panel
    view = flow.view
    assert view.counters is not None and view.network is not None
    assert view.software is not None and view.log_lines
    assert view.outbox is None  # this rig has no outbox: the panel says so
