"""The check-in flow against the real reference back office over loopback HTTP, with the
kiosk's real storage and simulated devices."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import httpx
import pytest

from devices.sim import SimBarcodeReader, SimReceiptPrinter
from flows.appointment_code import public_key_from_base64
from flows.checkin import CheckInFlow, CheckInSettings, Problem, Step
from kiosk.client import HttpBackOffice
from kiosk.storage.audit import AuditLog
from kiosk.storage.db import open_database
from kiosk.storage.used_codes import UsedCodeStore

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The published demo key: what the test back office signs with (it runs without --signing-key).
DEMO_PUBLIC_KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def shanghai_now() -> datetime:
    return datetime.now(SHANGHAI)


def shanghai_today() -> date:
    return shanghai_now().date()


def during_the_seed_slot() -> datetime:
    """Today 09:10 at the centre: inside every test appointment's 09:00-09:30 slot."""
    return datetime.combine(shanghai_today(), time(9, 10), tzinfo=SHANGHAI)


def signed_code(backoffice_server, code: str) -> str:
    answer = httpx.get(f"{backoffice_server.api}/appointments/{code}/signed-code",
                       timeout=5, trust_env=False)
    assert answer.status_code == 200, answer.text
    return answer.json()["qr_text"]


@pytest.fixture
def kiosk_parts(backoffice_server, tmp_path):
    db = open_database(tmp_path / "kiosk.db")
    parts = {
        "db": db,
        "client": HttpBackOffice(backoffice_server.url, timeout_s=3),
        "used": UsedCodeStore(db),
        "audit": AuditLog(db),
        "printer": SimReceiptPrinter(output_dir=tmp_path / "prints", auto_take_s=None,
                                     print_delay_s=0),
    }
    yield parts
    db.close()


def make_flow(parts, centre: str, kiosk_id: str = "ZZ-T-1", session: str = "s1",
              now: Callable[[], datetime] = shanghai_now) -> CheckInFlow:
    return CheckInFlow(
        scanner=SimBarcodeReader(), printer=parts["printer"], backoffice=parts["client"],
        used_codes=parts["used"], audit=parts["audit"],
        settings=CheckInSettings(kiosk_id, centre, scan_timeout_s=5, print_timeout_s=5,
                                 take_timeout_s=0.2, centre_name="测试市测试区政务服务中心",
                                 trusted_keys={"demo": public_key_from_base64(DEMO_PUBLIC_KEY)}),
        session_id=session, now=now)


def test_check_in_prints_the_ticket_the_back_office_issued(backoffice_server, kiosk_parts,
                                                           tmp_path):
    code = backoffice_server.fresh_code()
    flow = make_flow(kiosk_parts, backoffice_server.centre_id)
    threading.Timer(0.05, flow.scanner.show, (code,)).start()
    flow.scan()
    assert flow.view.step is Step.CONFIRM
    flow.confirm()
    assert flow.view.step is Step.DONE
    number = flow.view.ticket.number
    printed = next((kiosk_parts["printer"].output_dir).glob("*.txt")).read_text("utf-8")
    assert number in printed
    # The back office now knows it as checked in: a second kiosk is refused.
    second_kiosk_db = open_database(tmp_path / "second-kiosk.db")
    try:
        other = make_flow({**kiosk_parts, "used": UsedCodeStore(second_kiosk_db)},
                          backoffice_server.centre_id, kiosk_id="ZZ-T-2", session="s2")
        other.submit_code(code)
        assert other.view.problem is Problem.ALREADY_USED
    finally:
        second_kiosk_db.close()


def test_a_retried_check_in_gets_the_same_ticket(backoffice_server, kiosk_parts):
    code = backoffice_server.fresh_code()
    client = kiosk_parts["client"]
    first = client.check_in(code, kiosk_id="ZZ-T-1", centre_id=backoffice_server.centre_id,
                            idempotency_key="retry-key-0001")
    again = client.check_in(code, kiosk_id="ZZ-T-1", centre_id=backoffice_server.centre_id,
                            idempotency_key="retry-key-0001")
    assert first.number == again.number


@pytest.mark.parametrize("key, problem", [
    ("tomorrow", Problem.OTHER_DAY),
    ("yesterday", Problem.OTHER_DAY),
    ("other_centre", Problem.OTHER_CENTRE),
    ("cancelled", Problem.APPOINTMENT_CANCELLED),
    ("checked_in", Problem.ALREADY_USED),
])
def test_refusals_from_real_data(backoffice_server, kiosk_parts, key, problem):
    flow = make_flow(kiosk_parts, backoffice_server.centre_id)
    flow.submit_code(backoffice_server.seed_codes[key])
    assert flow.view.problem is problem


def test_unknown_code(backoffice_server, kiosk_parts):
    flow = make_flow(kiosk_parts, backoffice_server.centre_id)
    flow.submit_code("T-NOT-BOOKED")
    assert flow.view.problem is Problem.UNKNOWN_CODE


def test_server_stopped_mid_journey_then_back(backoffice_server, kiosk_parts, tmp_path,
                                             backoffice_db_url):
    from kiosk.launcher import EmbeddedBackOffice, free_port
    from tests.conftest import make_test_seed, write_seed

    seed = write_seed(tmp_path / "seed.json", make_test_seed())
    port = free_port()
    db_url = backoffice_db_url
    server = EmbeddedBackOffice(port=port, db_url=db_url, seed=seed)
    server.start()
    kiosk_parts["client"] = HttpBackOffice(server.url, timeout_s=2)
    flow = make_flow(kiosk_parts, backoffice_server.centre_id)
    flow.submit_code("T-FRESH-080")
    assert flow.view.step is Step.CONFIRM
    server.stop()
    flow.confirm()
    assert flow.view.problem is Problem.BACKOFFICE_UNAVAILABLE
    restarted = EmbeddedBackOffice(port=port, db_url=db_url, seed=seed)
    with restarted:
        flow.retry()
        assert flow.view.step is Step.DONE


def test_nothing_personal_reaches_the_kiosk_database(backoffice_server, kiosk_parts):
    flow = make_flow(kiosk_parts, backoffice_server.centre_id)
    flow.submit_code(backoffice_server.fresh_code())
    flow.confirm()
    assert "checkin.checked_in" in [r.kind for r in kiosk_parts["audit"].recent()]
    kiosk_parts["db"].close()
    stored = b"".join(p.read_bytes() for p in kiosk_parts["db"].path.parent.glob("kiosk.db*"))
    assert backoffice_server.applicant_name.encode() not in stored


# --- signed codes -----------------------------------------------------------------------------

def test_signed_code_from_the_back_office_checks_in_there(backoffice_server, kiosk_parts,
                                                          tmp_path):
    code = backoffice_server.fresh_code()
    qr_text = signed_code(backoffice_server, code)
    flow = make_flow(kiosk_parts, backoffice_server.centre_id, now=during_the_seed_slot)
    threading.Timer(0.05, flow.scanner.show, (qr_text + "\r",)).start()
    flow.scan()
    assert flow.view.step is Step.CONFIRM
    summary = flow.view.appointment
    assert summary.place in ("二楼 A区 1号窗口", "二楼 B区 2号窗口", "二楼 C区 3号窗口")
    assert summary.applicant.startswith(backoffice_server.applicant_name[0]) \
        and backoffice_server.applicant_name not in repr(flow.view)
    flow.confirm()
    assert flow.view.step is Step.DONE
    assert flow.view.ticket.appointment_id == f"ID-{code}"
    # The back office knows it as checked in: the online code is now refused everywhere...
    online = make_flow(kiosk_parts, backoffice_server.centre_id)
    online.submit_code(code)
    assert online.view.problem is Problem.ALREADY_USED
    # ...and a second kiosk, which cannot know offline, is refused at check-in.
    second_db = open_database(tmp_path / "second-kiosk.db")
    try:
        other = make_flow({**kiosk_parts, "used": UsedCodeStore(second_db)},
                          backoffice_server.centre_id, kiosk_id="ZZ-T-2", session="s2",
                          now=during_the_seed_slot)
        other.submit_code(qr_text)
        assert other.view.step is Step.CONFIRM
        other.confirm()
        assert other.view.problem is Problem.ALREADY_USED
    finally:
        second_db.close()
    # This kiosk refuses it offline, from its own record.
    again = make_flow(kiosk_parts, backoffice_server.centre_id, now=during_the_seed_slot)
    again.submit_code(qr_text)
    assert again.view.problem is Problem.ALREADY_USED


def test_signed_code_for_another_centre_from_real_data(backoffice_server, kiosk_parts):
    qr_text = signed_code(backoffice_server, backoffice_server.seed_codes["other_centre"])
    flow = make_flow(kiosk_parts, backoffice_server.centre_id, now=during_the_seed_slot)
    flow.submit_code(qr_text)
    assert (flow.view.problem, flow.view.detail) == (Problem.OTHER_CENTRE,
                                                     backoffice_server.other_centre_id)


def test_signed_code_back_office_unreachable_after_verifying_then_back(backoffice_server,
                                                                       kiosk_parts):
    from kiosk.launcher import free_port

    code = backoffice_server.fresh_code()
    qr_text = signed_code(backoffice_server, code)
    reachable = kiosk_parts["client"]
    # Nothing listens there: what the kiosk sees while the network or the server is down.
    kiosk_parts["client"] = HttpBackOffice(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    flow = make_flow(kiosk_parts, backoffice_server.centre_id, now=during_the_seed_slot)
    flow.submit_code(qr_text)
    assert flow.view.step is Step.CONFIRM  # verifying needs no back office
    flow.confirm()
    assert flow.view.problem is Problem.BACKOFFICE_UNAVAILABLE
    assert not kiosk_parts["used"].is_used(f"ID-{code}")
    flow.backoffice = reachable  # the network is back
    flow.retry()
    assert flow.view.step is Step.DONE
    assert kiosk_parts["used"].is_used(f"ID-{code}")
