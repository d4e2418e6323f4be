"""自助申报 end to end below the UI: the real back office (demo catalogue) over loopback HTTP,
the kiosk's real outbox and worker, the catalogue cache, simulated card reader, camera and
receipt printer. The printed receipt is read back from the simulated printer's PDF."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from devices.sim import SimCamera, SimIdCardReader, SimReceiptPrinter
from devices.sim.identity import load_demo_card
from flows.apply import (
    ApplyAction,
    ApplyFlow,
    ApplyProblem,
    ApplySettings,
    ApplyStep,
    MaterialState,
    working_days_after,
)
from flows.identify import IdentifyFlow, IdentifySettings, IdStep
from flows.material_capture import CaptureStep, MaterialCaptureSettings
from kiosk.app import KioskOutbox
from kiosk.catalogue_cache import CachedCatalogue
from kiosk.client import NO_RETRY, HttpBackOffice
from kiosk.held_prints import HeldPrintStore
from kiosk.launcher import EmbeddedBackOffice, free_port
from kiosk.outbox import OutboxStore, OutboxWorker, create_key
from tests.fakes import ListAudit

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEMO_SEED = Path(__file__).resolve().parents[1] / "assets" / "seed" / "demo.json"
CENTRE = "530102-01"
CARD, _ = load_demo_card(str(Path(__file__).resolve().parents[1] / "assets/sim/demo-id-card.json"))


@pytest.fixture(scope="module")
def demo_backoffice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("apply-backoffice")
    server = EmbeddedBackOffice(port=free_port(), db_url=f"sqlite:///{folder}/bo.db",
                                seed=DEMO_SEED, timezone="Asia/Shanghai")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


class Kiosk:
    """The parts of a kiosk the journey uses, built as kiosk.app builds them."""

    def __init__(self, url: str, folder: Path, *, worker: bool = True) -> None:
        self.client = HttpBackOffice(url, timeout_s=2, retry=NO_RETRY)
        key = create_key(folder / "outbox.key")
        self.store = OutboxStore.open(folder, key)
        self.worker = OutboxWorker(self.store, self.client) if worker else None
        if self.worker is not None:
            self.worker.start()
        self.catalogue = CachedCatalogue(self.client, folder / "catalogue")
        self.id_card = SimIdCardReader(read_delay_s=0.05)
        self.camera = SimCamera(width=1280, height=720, fps=30.0)
        self.printer = SimReceiptPrinter(output_dir=folder / "prints", auto_take_s=None,
                                         print_delay_s=0)
        self.audit = ListAudit()
        self.held = HeldPrintStore.open(folder / "data", key)

    def flow(self, **settings: object) -> ApplyFlow:
        identify = IdentifyFlow(id_card=self.id_card, smart_card=None, audit=self.audit,
                                session_id="S-APPLY", today=lambda: date(2026, 11, 22),
                                settings=IdentifySettings(read_timeout_s=5))
        return ApplyFlow(
            catalogue=self.catalogue, identify=identify, outbox=KioskOutbox(self.store),
            printer=self.printer, camera=self.camera, audit=self.audit,
            settings=ApplySettings("ZZ-TEST-APPLY", CENTRE, "五华区政务服务中心",
                                   print_timeout_s=5, take_timeout_s=0.2,
                                   **settings),  # type: ignore[arg-type]
            session_id="S-APPLY", now=lambda: datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI),
            capture_settings=MaterialCaptureSettings(auto_capture_frames=3), held=self.held)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop(5)
        self.store.close()
        self.client.close()
        for device in (self.id_card, self.camera, self.printer):
            device.close()


@pytest.fixture
def kiosk(demo_backoffice: str, tmp_path: Path) -> Iterator[Kiosk]:
    k = Kiosk(demo_backoffice, tmp_path)
    yield k
    k.close()


def until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)
    assert condition(), "condition not reached"  # type: ignore[operator]


def identify(kiosk: Kiosk, flow: ApplyFlow, item: str) -> None:
    flow.start()
    assert flow.view.step is ApplyStep.CHOOSE_ITEM
    flow.choose(item)
    assert flow.view.step is ApplyStep.NOTICE and flow.view.item.code == item
    kiosk.id_card.insert(CARD)
    flow.begin()
    assert flow.identify.view.step is IdStep.IDENTIFIED
    flow.identified()
    assert flow.view.step is ApplyStep.MATERIALS


def photograph(kiosk: Kiosk, flow: ApplyFlow, code: str, kind: str) -> None:
    """As the UI does it: the capture flow watches the camera on a worker."""
    kiosk.camera.show_document("well_placed", kind, seed=len(code))
    capture = flow.capture(code)
    assert capture is not None and flow.view.step is ApplyStep.CAPTURE
    watcher = threading.Thread(target=capture.watch, args=(kiosk.camera, 20.0))
    watcher.start()
    until(lambda: capture.view.step is CaptureStep.REVIEW, 20)
    flow.capture_finished()
    watcher.join(5)
    assert not watcher.is_alive()
    assert flow.view.step is ApplyStep.MATERIALS


def printed_text(kiosk: Kiosk) -> str:
    """What the simulated printer put on paper, as text (it keeps it beside the PDF)."""
    return kiosk.printer.printed[-1].with_suffix(".txt").read_text(encoding="utf-8")


def applications_of(url: str, id_number: str) -> list[dict]:
    answer = httpx.post(f"{url}/api/v1/applications/search", timeout=5, trust_env=False,
                        json={"id_number": id_number, "document_type": "residentId",
                              "session_id": "S-CHECK"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_application_is_stored_delivered_and_its_receipt_printed(kiosk, demo_backoffice):
    before = {a["tracking_number"] for a in applications_of(demo_backoffice, CARD.id_number)}
    flow = kiosk.flow()
    identify(kiosk, flow, "HJ001")
    assert [(m.code, m.state) for m in flow.view.materials] == [
        ("ID", MaterialState.MISSING), ("HKB", MaterialState.MISSING)]
    flow.materials_done()  # refused: two required materials are missing
    assert flow.view.step is ApplyStep.MATERIALS and not flow.view.can_continue
    photograph(kiosk, flow, "ID", "id1")
    photograph(kiosk, flow, "HKB", "a4")
    assert [(m.state, m.pages) for m in flow.view.materials] == [
        (MaterialState.CAPTURED, 1), (MaterialState.CAPTURED, 1)]
    flow.materials_done()
    assert flow.view.step is ApplyStep.CONTACT
    assert not flow.set_phone("12345")
    assert flow.view.step is ApplyStep.CONTACT and flow.view.detail == "invalid_phone"
    assert flow.set_phone("13800138000")
    assert flow.view.step is ApplyStep.COMMITMENT
    flow.commit()
    assert flow.view.step is ApplyStep.DONE
    receipt = flow.view.receipt
    assert receipt is not None and receipt.tracking_number is not None
    # The back office has it once, with both materials, findable by the applicant's number.
    after = applications_of(demo_backoffice, CARD.id_number)
    new = [a for a in after if a["tracking_number"] not in before]
    assert [a["tracking_number"] for a in new] == [receipt.tracking_number]
    assert new[0]["service_item_code"] == "HJ001"
    # The receipt: both numbers, the item, the masked applicant, no "waiting" note.
    text = printed_text(kiosk)
    assert receipt.tracking_number in text and receipt.local_tracking_number in text
    assert "户籍证明开具" in text and "5301**********0026" in text
    assert CARD.id_number not in text and "网络恢复后自动提交" not in text
    assert f"[QR] {receipt.tracking_number}" in text.splitlines()
    assert "apply.stored" in kiosk.audit.kinds() and "apply.done" in kiosk.audit.kinds()
    # Counted like every print (maintenance counters, metrics).
    assert ("print.printed", "S-APPLY", {"kind": "application_receipt", "pages": 1,
                                         "duplicate": False, "attempt": 1}) in kiosk.audit.rows
    # Nothing personal in the audit trail.
    assert CARD.id_number not in repr(kiosk.audit.rows)
    assert "13800138000" not in repr(kiosk.audit.rows)


def test_while_the_back_office_is_down_the_receipt_says_it_will_be_sent(tmp_path,
                                                                        demo_backoffice):
    online = Kiosk(demo_backoffice, tmp_path / "online")
    online.catalogue.refresh(CENTRE)  # the copy from when the network was up
    online.close()
    # The same kiosk after the network went: the catalogue comes from its copy.
    offline = Kiosk(f"http://127.0.0.1:{free_port()}", tmp_path / "offline")
    (tmp_path / "offline" / "catalogue").mkdir()
    for copy in (tmp_path / "online" / "catalogue").iterdir():
        (tmp_path / "offline" / "catalogue" / copy.name).write_bytes(copy.read_bytes())
    try:
        flow = offline.flow(delivery_wait_s=0.3)
        identify(offline, flow, "HJ002")
        photograph(offline, flow, "ID", "id1")
        photograph(offline, flow, "PHOTO", "id1")
        photograph(offline, flow, "HOUSING", "a4")
        assert not flow.view.can_continue
        flow.defer("ID")  # not deferrable: nothing changes
        assert flow.view.materials[0].state is MaterialState.CAPTURED
        flow.defer("WORK")  # 容缺后补
        assert flow.view.materials[3].state is MaterialState.DEFERRED and flow.view.can_continue
        flow.materials_done()
        flow.set_phone("13900139000")
        flow.commit()
        assert flow.view.step is ApplyStep.DONE
        receipt = flow.view.receipt
        assert receipt.tracking_number is None
        entry = offline.store.lookup(receipt.local_tracking_number)
        assert entry is not None and entry.state == "pending"
        text = printed_text(offline)
        assert receipt.local_tracking_number in text and "网络恢复后自动提交" in text
        assert "办件编号：" not in text
        # 容缺后补 with its deadline, five working days after Friday 2026-11-20.
        assert working_days_after(date(2026, 11, 20), 5) == date(2026, 11, 27)
        assert "就业或就读证明" in text and "2026-11-27" in text
    finally:
        offline.close()


def test_optional_materials_may_be_skipped_and_choices_undone(kiosk):
    flow = kiosk.flow()
    identify(kiosk, flow, "YB001")
    codes = [m.code for m in flow.view.materials]
    optional = next(m.code for m in flow.view.materials if m.requirement == "optional")
    flow.skip(codes[0])  # required: cannot be skipped
    assert flow.view.materials[0].state is MaterialState.MISSING
    flow.skip(optional)
    assert {m.code: m.state for m in flow.view.materials}[optional] is MaterialState.SKIPPED
    flow.reset_material(optional)
    assert {m.code: m.state for m in flow.view.materials}[optional] is MaterialState.MISSING
    flow.cancel()


def test_no_catalogue_and_no_copy_is_a_problem_with_a_way_back(tmp_path):
    offline = Kiosk(f"http://127.0.0.1:{free_port()}", tmp_path, worker=False)
    try:
        flow = offline.flow()
        flow.start()
        assert flow.view.step is ApplyStep.FAILED
        assert flow.view.problem is ApplyProblem.CATALOGUE_UNAVAILABLE
        assert ApplyAction.RETRY in flow.view.actions and ApplyAction.HOME in flow.view.actions
    finally:
        offline.close()


def test_a_receipt_that_does_not_print_is_offered_once_more_and_nothing_is_lost(kiosk):
    flow = kiosk.flow()
    identify(kiosk, flow, "HJ001")
    photograph(kiosk, flow, "ID", "id1")
    photograph(kiosk, flow, "HKB", "a4")
    flow.materials_done()
    flow.set_phone("13800138000")
    kiosk.printer.jam()
    flow.commit()
    view = flow.view
    assert view.step is ApplyStep.FAILED and view.problem is ApplyProblem.RECEIPT_NOT_PRINTED
    assert view.receipt is not None and ApplyAction.REPRINT in view.actions
    stored = kiosk.store.lookup(view.receipt.local_tracking_number)
    assert stored is not None  # the application is in the outbox whatever the paper did
    assert view.staff_reference == "" and kiosk.held.list() == []
    flow.reprint()  # still jammed
    view = flow.view
    assert view.problem is ApplyProblem.RECEIPT_NOT_PRINTED
    assert ApplyAction.REPRINT not in view.actions
    assert ApplyAction.CALL_STAFF in view.actions
    # Kept for staff, under the reference the screen shows; it reprints from the kiosk.
    [held] = kiosk.held.list()
    assert (held.reference, held.kind) == (view.staff_reference, "application_receipt")
    assert ("apply.receipt_failed", "S-APPLY",
            {"error": "paperJammed", "reference": held.reference}) in kiosk.audit.rows
    number = view.receipt.number
    flow.finish()
    assert flow.view.step is ApplyStep.DONE
    flow.wipe()
    kiosk.printer.clear_jam()
    assert kiosk.held.reprint(held.reference, kiosk.printer, 5).ok
    assert number in printed_text(kiosk) and kiosk.held.list() == []


def test_without_a_camera_the_citizen_is_told_before_identifying(kiosk):
    kiosk.camera.detach()  # unplugged
    flow = kiosk.flow()
    flow.start()
    flow.choose("HJ001")
    flow.begin()
    assert flow.view.problem is ApplyProblem.CAMERA_UNAVAILABLE


def test_wipe_drops_the_document_pages_and_phone(kiosk):
    flow = kiosk.flow()
    identify(kiosk, flow, "HJ001")
    photograph(kiosk, flow, "ID", "id1")
    flow.wipe()
    assert flow.view.step is ApplyStep.CANCELLED
    assert flow._results == {} and flow._phone == "" and flow.identify.document is None


def test_the_catalogue_copy_is_revalidated_and_survives_a_restart(tmp_path, demo_backoffice):
    clock = [1000.0]
    client = HttpBackOffice(demo_backoffice, timeout_s=2, retry=NO_RETRY)
    calls: list[str | None] = []

    class Counting:
        def service_catalogue(self, centre_id, *, etag=None):
            calls.append(etag)
            return client.service_catalogue(centre_id, etag=etag)

    try:
        cache = CachedCatalogue(Counting(), tmp_path, max_age_s=300, clock=lambda: clock[0])
        first = cache.service_catalogue(CENTRE)
        assert calls == [None] and len(first.items) >= 12
        cache.service_catalogue(CENTRE)
        assert calls == [None]  # young enough: not asked
        clock[0] += 301
        again = cache.service_catalogue(CENTRE)
        assert calls == [None, first.version] and again == first  # a 304 keeps the copy
        restarted = CachedCatalogue(Counting(), tmp_path, clock=lambda: clock[0])
        assert restarted.service_catalogue(CENTRE) == first
        assert len(calls) == 2  # read from the file, not fetched
        (tmp_path / f"catalogue-{CENTRE}.json").write_text("{damaged")
        damaged = CachedCatalogue(Counting(), tmp_path, clock=lambda: clock[0])
        assert damaged.service_catalogue(CENTRE) == first  # fetched anew
        assert len(calls) == 3
    finally:
        client.close()


def test_the_kiosk_fetches_its_catalogue_copy_in_the_background(tmp_path, demo_backoffice):
    from kiosk.catalogue_cache import CatalogueRefresher

    client = HttpBackOffice(demo_backoffice, timeout_s=2, retry=NO_RETRY)
    cache = CachedCatalogue(client, tmp_path)
    refresher = CatalogueRefresher(cache, CENTRE, interval_s=60)
    try:
        refresher.start()
        until(lambda: cache.fetched_at(CENTRE) is not None)
        assert (tmp_path / f"catalogue-{CENTRE}.json").exists()
    finally:
        refresher.stop()
        client.close()
    assert refresher._thread is None


def test_each_tap_on_print_notice_prints_another_copy(kiosk):
    flow = kiosk.flow()
    flow.start()
    flow.choose("HJ001")
    flow.print_notice()
    assert flow.view.step is ApplyStep.NOTICE and flow.view.detail == "notice_printed"
    flow.print_notice()  # a second copy, for the family member who will bring the papers
    assert flow.view.detail == "notice_printed"
    assert len(kiosk.printer.printed) == 2
    kiosk.printer.run_out_after(0)  # the status says so: refused before anything is sent
    flow.print_notice()
    assert flow.view.detail == "printer_unavailable" and flow.view.step is ApplyStep.NOTICE
    assert len(kiosk.printer.printed) == 2
    kinds = [d["kind"] for k, _s, d in kiosk.audit.rows if k == "print.printed"]
    assert kinds == ["one_time_notice", "one_time_notice"]
