"""kiosk.client.HttpBackOffice against the real back office, plus MockTransport for the faults
a real server will not produce on demand."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from flows.ports import (
    Appointment,
    AppointmentAlreadyUsed,
    AppointmentNotFound,
    AppointmentNotValidHere,
    AppointmentStatus,
    BackOffice,
    BackOfficeRejected,
    BackOfficeUnavailable,
    QueueTicket,
    TicketCategory,
)
from kiosk.client import HttpBackOffice
from kiosk.launcher import EmbeddedBackOffice, free_port


def key() -> str:
    return f"client-test-{uuid.uuid4()}"


@pytest.fixture
def client(backoffice_server) -> Iterator[HttpBackOffice]:
    with HttpBackOffice(backoffice_server.url, timeout_s=10) as bo:
        yield bo


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> HttpBackOffice:
    return HttpBackOffice("http://backoffice.test", transport=httpx.MockTransport(handler))


def fixed(status: int, body: object = None, content: bytes | None = None,
          headers: dict[str, str] | None = None) -> Callable[[httpx.Request], httpx.Response]:
    def handler(_request: httpx.Request) -> httpx.Response:
        if content is not None:
            return httpx.Response(status, content=content, headers=headers)
        return httpx.Response(status, json=body, headers=headers)
    return handler


def good_ticket(**override: object) -> dict[str, object]:
    ticket: dict[str, object] = {
        "number": "A007", "service_name": "社会保障", "centre_name": "测试中心", "floor": "二楼",
        "area": "B区", "window": "5-8号窗口", "issued_at": "2030-01-02T09:00:00+08:00",
        "waiting_ahead": 6, "appointment_id": None}
    ticket.update(override)
    return {"ticket": ticket}


# --- against the real server -----------------------------------------------------------------

def test_is_a_backoffice(client):
    backoffice: BackOffice = client
    assert backoffice.health() is True


def test_base_url_may_include_the_api_prefix(backoffice_server):
    with HttpBackOffice(backoffice_server.url + "/api/v1/") as bo:
        assert bo.health() is True


def test_get_appointment(client, backoffice_server):
    code = backoffice_server.seed_codes["tomorrow"]
    appt = client.get_appointment(code)
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    assert appt == Appointment(
        code=code, appointment_id=f"ID-{code}", centre_id=backoffice_server.centre_id,
        centre_name="测试市测试区政务服务中心", service_item_code="SB001",
        service_name="社会保障卡申领", date=today + dt.timedelta(days=1),
        slot_start=dt.time(9, 0), slot_end=dt.time(9, 30),
        applicant_name=backoffice_server.applicant_name, status=AppointmentStatus.BOOKED)
    assert backoffice_server.applicant_name not in repr(appt)


def test_unknown_appointment_is_not_found(client):
    with pytest.raises(AppointmentNotFound):
        client.get_appointment("NO-SUCH-CODE")
    with pytest.raises(AppointmentNotFound):
        client.check_in("NO-SUCH-CODE", kiosk_id="K", centre_id="TEST-01", idempotency_key=key())


def test_check_in_replay_and_conflict(client, backoffice_server):
    code = backoffice_server.fresh_code()
    idem = key()
    ticket = client.check_in(code, kiosk_id="KIOSK-C1", centre_id=backoffice_server.centre_id,
                             idempotency_key=idem)
    assert isinstance(ticket, QueueTicket)
    assert ticket.appointment_id == f"ID-{code}"
    assert ticket.number[0] in "ABC" and ticket.number[1:].isdigit()
    assert ticket.issued_at.utcoffset() == dt.timedelta(hours=8)
    assert ticket.waiting_ahead == int(ticket.number[1:]) - 1
    again = client.check_in(code, kiosk_id="KIOSK-C1", centre_id=backoffice_server.centre_id,
                            idempotency_key=idem)
    assert again == ticket
    with pytest.raises(AppointmentAlreadyUsed):
        client.check_in(code, kiosk_id="KIOSK-C1", centre_id=backoffice_server.centre_id,
                        idempotency_key=key())
    assert client.get_appointment(code).status is AppointmentStatus.CHECKED_IN


@pytest.mark.parametrize(("which", "centre", "reason"), [
    ("other_centre", "TEST-01", "wrong_centre"),
    ("tomorrow", "TEST-01", "not_today"),
    ("yesterday", "TEST-01", "not_today"),
    ("cancelled", "TEST-01", "cancelled"),
])
def test_not_valid_here(client, backoffice_server, which, centre, reason):
    with pytest.raises(AppointmentNotValidHere) as caught:
        client.check_in(backoffice_server.seed_codes[which], kiosk_id="K", centre_id=centre,
                        idempotency_key=key())
    assert caught.value.reason == reason


def test_malformed_code_is_rejected_without_a_request():
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    bo = mock_client(handler)
    for code in ["", "a/b", "x" * 65, "../health", "中文"]:
        with pytest.raises(BackOfficeRejected):
            bo.get_appointment(code)
        with pytest.raises(BackOfficeRejected):
            bo.check_in(code, kiosk_id="K", centre_id="C", idempotency_key=key())
    assert calls == []


def test_ticket_categories(client, backoffice_server):
    categories = client.ticket_categories(backoffice_server.centre_id)
    assert categories[0] == TicketCategory(code="A", name="社会保障", floor="二楼", area="A区",
                                           window="1号窗口")
    assert [c.code for c in categories] == ["A", "B", "C"]
    with pytest.raises(BackOfficeRejected):
        client.ticket_categories("NO-CENTRE")


def test_take_ticket(client, backoffice_server):
    idem = key()
    ticket = client.take_ticket("B", kiosk_id="KIOSK-C1", centre_id=backoffice_server.centre_id,
                                idempotency_key=idem)
    assert ticket.number.startswith("B")
    assert ticket.service_name == "医疗保障"
    assert ticket.appointment_id is None
    assert client.take_ticket("B", kiosk_id="KIOSK-C1", centre_id=backoffice_server.centre_id,
                              idempotency_key=idem) == ticket
    following = client.take_ticket("B", kiosk_id="KIOSK-C1",
                                   centre_id=backoffice_server.centre_id, idempotency_key=key())
    assert int(following.number[1:]) == int(ticket.number[1:]) + 1
    with pytest.raises(BackOfficeRejected):
        client.take_ticket("Z", kiosk_id="K", centre_id=backoffice_server.centre_id,
                           idempotency_key=key())


def test_call_staff_creates_an_open_help_request(client, backoffice_server):
    session_id = f"client-session-{uuid.uuid4()}"
    client.call_staff(kiosk_id="KIOSK-C1", centre_id=backoffice_server.centre_id,
                      session_id=session_id)
    listed = httpx.get(f"{backoffice_server.api}/help-requests",
                       params={"centre_id": backoffice_server.centre_id}, trust_env=False).json()
    assert [(r["kiosk_id"], r["status"]) for r in listed if r["session_id"] == session_id] == [
        ("KIOSK-C1", "open")]
    with pytest.raises(BackOfficeRejected):
        client.call_staff(kiosk_id="K", centre_id="NO-CENTRE", session_id="s")


def test_no_personal_data_in_logs_or_errors(client, backoffice_server, caplog):
    caplog.set_level(logging.DEBUG)
    name = backoffice_server.applicant_name
    client.get_appointment(backoffice_server.seed_codes["tomorrow"])

    body = {"code": "X", "appointment_id": "I", "centre_id": "C", "centre_name": "N",
            "service_item_code": "S", "service_name": "S", "date": "not-a-date",
            "slot_start": "09:00", "slot_end": "09:30", "applicant_name": name,
            "status": "booked"}
    with pytest.raises(BackOfficeUnavailable) as caught:
        mock_client(fixed(200, body)).get_appointment("X")
    assert "date" in str(caught.value)
    body["applicant_name"] = 12345
    with pytest.raises(BackOfficeUnavailable) as caught_type:
        mock_client(fixed(200, body)).get_appointment("X")
    assert "applicant_name" in str(caught_type.value)
    assert "12345" not in str(caught_type.value)
    assert name not in str(caught.value)
    assert name not in caplog.text


# --- server gone -----------------------------------------------------------------------------

def test_server_that_died_makes_the_client_unavailable(tmp_path, test_seed):
    seed_path = tmp_path / "seed.json"
    seed_path.write_text(json.dumps(test_seed, ensure_ascii=False), encoding="utf-8")
    server = EmbeddedBackOffice(port=free_port(), db_url=f"sqlite:///{tmp_path / 'bo.db'}",
                                seed=seed_path)
    with server, HttpBackOffice(server.url, timeout_s=5) as bo:
        assert bo.health() is True
        assert bo.get_appointment("T-TOMORROW").appointment_id == "ID-T-TOMORROW"
        server.stop()
        assert not server.running()
        assert bo.health() is False
        with pytest.raises(BackOfficeUnavailable, match="cannot reach"):
            bo.get_appointment("T-TOMORROW")
        with pytest.raises(BackOfficeUnavailable):
            bo.take_ticket("A", kiosk_id="K", centre_id="TEST-01", idempotency_key=key())


def test_nothing_listening_is_unavailable():
    with HttpBackOffice(f"http://127.0.0.1:{free_port()}", timeout_s=2) as bo:
        assert bo.health() is False
        with pytest.raises(BackOfficeUnavailable):
            bo.ticket_categories("TEST-01")


# --- faults through MockTransport ------------------------------------------------------------

@pytest.mark.parametrize("handler", [
    fixed(500, content=b"Internal Server Error"),
    fixed(503, {"error": "database_unavailable", "message": "down"}),
    fixed(502, content=b"<html>Bad Gateway</html>"),
    fixed(200, content=b"\x00\xffnot json at all"),
    fixed(200, {"ticket": {"number": "A001"}}),  # fields missing
    fixed(200, good_ticket(waiting_ahead="many")),
    fixed(200, good_ticket(waiting_ahead=-1)),
    fixed(200, good_ticket(issued_at="2030-01-02T09:00:00")),  # no offset: ambiguous
    fixed(200, [good_ticket()]),
    fixed(404, content=b"<html>Not Found</html>"),  # not our server
    fixed(404, {"detail": "Not Found"}),  # not our error shape
    fixed(302, content=b"", headers={"Location": "http://elsewhere/"}),
], ids=["500-text", "503-json", "502-html", "200-garbage", "200-missing-fields",
        "200-wrong-type", "200-negative", "200-naive-datetime", "200-list", "404-html",
        "404-foreign-json", "302"])
def test_bad_answers_are_unavailable(handler):
    bo = mock_client(handler)
    with pytest.raises(BackOfficeUnavailable):
        bo.take_ticket("A", kiosk_id="K", centre_id="C", idempotency_key=key())
    assert bo.health() is False


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ConnectError,
                                   httpx.RemoteProtocolError, httpx.ReadError])
def test_transport_errors_are_unavailable(error):
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    bo = mock_client(handler)
    with pytest.raises(BackOfficeUnavailable) as caught:
        bo.get_appointment("APT-1")
    if issubclass(error, httpx.TimeoutException):
        assert "did not answer within" in str(caught.value)
    else:
        assert "cannot reach" in str(caught.value)
    assert bo.health() is False


def test_wrongly_shaped_lists_and_appointments_are_unavailable():
    with pytest.raises(BackOfficeUnavailable):
        mock_client(fixed(200, {"code": "A"})).ticket_categories("C")
    with pytest.raises(BackOfficeUnavailable):
        mock_client(fixed(200, [{"code": "A", "name": "x"}])).ticket_categories("C")
    appt = {"code": "X", "appointment_id": "I", "centre_id": "C", "centre_name": "N",
            "service_item_code": "S", "service_name": "S", "date": "2030-01-01",
            "slot_start": "09:00", "slot_end": "09:30", "applicant_name": "n",
            "status": "teleported"}
    with pytest.raises(BackOfficeUnavailable, match="status"):
        mock_client(fixed(200, appt)).get_appointment("X")
    with pytest.raises(BackOfficeUnavailable):
        mock_client(fixed(201, {"id": "one"})).call_staff(kiosk_id="K", centre_id="C",
                                                          session_id="s")


@pytest.mark.parametrize(("status", "error", "expected"), [
    (404, "appointment_not_found", AppointmentNotFound),
    (409, "already_checked_in", AppointmentAlreadyUsed),
    (422, "wrong_centre", AppointmentNotValidHere),
    (422, "not_today", AppointmentNotValidHere),
    (422, "cancelled", AppointmentNotValidHere),
    (422, "idempotency_key_reused", BackOfficeRejected),
    (400, "idempotency_key_required", BackOfficeRejected),
    (404, "centre_not_found", BackOfficeRejected),
    (429, "too_many_requests", BackOfficeRejected),
])
def test_error_mapping(status, error, expected):
    bo = mock_client(fixed(status, {"error": error, "message": "m"}))
    with pytest.raises(expected) as caught:
        bo.check_in("APT-1", kiosk_id="K", centre_id="C", idempotency_key=key())
    assert type(caught.value) is expected
    if expected is AppointmentNotValidHere:
        assert caught.value.reason == error


def test_every_write_carries_an_idempotency_key():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/help-requests"):
            return httpx.Response(201, json={"id": 1, "created_at": "2030-01-02T09:00:00+08:00"})
        return httpx.Response(200, json=good_ticket())

    bo = mock_client(handler)
    bo.check_in("APT-1", kiosk_id="K", centre_id="C", idempotency_key="check-in-key-1")
    bo.take_ticket("A", kiosk_id="K", centre_id="C", idempotency_key="take-key-0001")
    bo.call_staff(kiosk_id="K", centre_id="C", session_id="s")
    bo.call_staff(kiosk_id="K", centre_id="C", session_id="s")
    assert [r.method for r in seen] == ["POST"] * 4
    assert [r.url.path for r in seen] == ["/api/v1/appointments/APT-1/check-in",
                                          "/api/v1/queue-tickets", "/api/v1/help-requests",
                                          "/api/v1/help-requests"]
    keys = [r.headers.get("Idempotency-Key") for r in seen]
    assert keys[:2] == ["check-in-key-1", "take-key-0001"]
    assert keys[2] and keys[3] and keys[2] != keys[3] and 8 <= len(keys[2]) <= 128
    assert json.loads(seen[0].content) == {"kiosk_id": "K", "centre_id": "C"}
    assert json.loads(seen[1].content) == {"centre_id": "C", "category_code": "A", "kiosk_id": "K"}


def test_ticket_fields_are_carried_over():
    bo = mock_client(fixed(201, good_ticket(appointment_id="APPT-9", extra_field="ignored")))
    ticket = bo.take_ticket("A", kiosk_id="K", centre_id="C", idempotency_key=key())
    assert ticket == QueueTicket(number="A007", service_name="社会保障", centre_name="测试中心",
                                 floor="二楼", area="B区", window="5-8号窗口",
                                 issued_at=dt.datetime(2030, 1, 2, 1, 0, tzinfo=dt.UTC),
                                 waiting_ahead=6, appointment_id="APPT-9")


def test_find_applications_over_http(client, backoffice_server):
    from flows.ports import ApplicationStatus

    found = client.find_applications(id_number=backoffice_server.applicant_id,
                                     document_type="residentId", session_id="s-1")
    assert [(a.tracking_number, a.status) for a in found] == [
        ("T-APP-NEW", ApplicationStatus.READY), ("T-APP-OLD", ApplicationStatus.COLLECTED)]
    assert found[0].note == "请到B区领取"
    assert found[0].submitted_at.tzinfo is not None


def test_find_applications_with_a_malformed_answer_is_unavailable():
    client = mock_client(fixed(200, [{"tracking_number": "X", "status": "lost"}]))
    with pytest.raises(BackOfficeUnavailable):
        client.find_applications(id_number="110101199003074514", document_type="residentId",
                                 session_id="s")
