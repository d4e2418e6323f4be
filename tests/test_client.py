"""kiosk.client.HttpBackOffice against the real back office, plus MockTransport for the faults
a real server will not produce on demand."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from flows.ports import (
    ApplicationStatus,
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
from kiosk.client import HttpBackOffice, RetryPolicy
from kiosk.launcher import EmbeddedBackOffice, free_port


def key() -> str:
    return f"client-test-{uuid.uuid4()}"


@pytest.fixture
def client(backoffice_server) -> Iterator[HttpBackOffice]:
    with HttpBackOffice(backoffice_server.url, timeout_s=10) as bo:
        yield bo


def mock_client(handler: Callable[[httpx.Request], httpx.Response],
                retry: RetryPolicy | None = None,
                sleeps: list[float] | None = None) -> HttpBackOffice:
    # Retry pauses are recorded, not slept: the behaviour is the same, the test is quicker.
    record = sleeps if sleeps is not None else []
    return HttpBackOffice("http://backoffice.test", transport=httpx.MockTransport(handler),
                          retry=retry, sleep=record.append, rng=random.Random(1))


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


# --- application submission ------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from flows.ports import BackOfficeError  # noqa: E402
from kiosk.client import (  # noqa: E402
    BackOfficeConfigError,
    BadAnswer,
    BatchRefused,
    OutgoingSubmission,
    SubmissionReceipt,
    SubmissionRejected,
    TlsFailure,
    TlsSettings,
)
from tests.outbox.fixtures import outbox_server  # noqa: E402, F401
from tests.outbox.kiosk_driver import APPLICANT_ID, APPLICANT_NAME, submission  # noqa: E402
from tests.outbox.peers import SubmissionsBackOffice, make_pki  # noqa: E402

LOCAL = "ZZ-20300102-K7M2Q9XW4T"


def receipt_body(**override: object) -> dict[str, object]:
    body: dict[str, object] = {"tracking_number": "BJ20300102000001",
                               "local_tracking_number": LOCAL, "status": "submitted",
                               "submitted_at": "2030-01-02T09:00:00+08:00"}
    body.update(override)
    return body


def submit(bo: HttpBackOffice, local: str = LOCAL, idem: str | None = None):
    return bo.submit_application(submission("client-test", "K-CLIENT"),
                                 local_tracking_number=local, idempotency_key=idem or key())


def test_submit_application_over_http_and_replay(outbox_server):  # noqa: F811
    local = f"ZZ-20300102-{uuid.uuid4().hex[:10].upper()}"
    idem = key()
    with HttpBackOffice(outbox_server.url, timeout_s=10) as bo:
        first = submit(bo, local, idem)
        again = submit(bo, local, idem)
        assert first.local_tracking_number == local
        assert first.status is ApplicationStatus.SUBMITTED
        assert first.submitted_at.tzinfo is not None
        assert (first.replayed, again.replayed) == (False, True)
        assert again.tracking_number == first.tracking_number
        assert bo.application_progress(local).tracking_number == first.tracking_number
        with pytest.raises(SubmissionRejected) as caught:
            submit(bo, local, key())  # the same local number under another key
        assert (caught.value.status, caught.value.error) == (409, "local_tracking_number_taken")


def test_submission_body_carries_everything_once():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=receipt_body())

    sub = submission("body", "K-CLIENT")
    receipt = mock_client(handler).submit_application(sub, local_tracking_number=LOCAL,
                                                      idempotency_key="submit-key-0001")
    assert receipt.tracking_number == "BJ20300102000001" and receipt.replayed is False
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/api/v1/applications")
    assert request.headers["Idempotency-Key"] == "submit-key-0001"
    sent = json.loads(request.content)
    assert sent["applicant"] == {"document_type": "residentId", "id_number": APPLICANT_ID,
                                 "name": APPLICANT_NAME}
    assert sent["local_tracking_number"] == LOCAL and sent["service_item_code"] == "SB001"
    import base64
    import hashlib

    assert [base64.b64decode(m["content_base64"]) for m in sent["materials"]] == [
        m.content for m in sub.materials]
    assert [m["sha256"] for m in sent["materials"]] == [
        hashlib.sha256(m.content).hexdigest() for m in sub.materials]
    assert APPLICANT_ID not in repr(sub) and APPLICANT_NAME not in repr(sub)


@pytest.mark.parametrize(("status", "error", "expected"), [
    (422, "unknown_service_item", SubmissionRejected),
    (422, "idempotency_key_reused", SubmissionRejected),
    (409, "local_tracking_number_taken", SubmissionRejected),
    (400, "malformed_idempotency_key", SubmissionRejected),
    (413, "too_large", SubmissionRejected),
    # Not the submission's fault: these must be retried later, never quarantined.
    (401, "unauthorised", BackOfficeRejected),
    (403, "forbidden", BackOfficeRejected),
    (404, "not_found", BackOfficeRejected),
    (429, "too_many_requests", BackOfficeRejected),
    (503, "database_unavailable", BackOfficeUnavailable),
])
def test_submission_error_mapping(status, error, expected):
    with pytest.raises(expected) as caught:
        submit(mock_client(fixed(status, {"error": error, "message": "m"})))
    assert type(caught.value) is expected
    if expected is SubmissionRejected:
        assert (caught.value.status, caught.value.error) == (status, error)


@pytest.mark.parametrize("answer", [
    receipt_body(local_tracking_number="ZZ-20300102-SOMEBODYEL"),  # another submission's
    receipt_body(tracking_number="BJ 1/../x"),
    receipt_body(status="teleported"),
    receipt_body(submitted_at="2030-01-02T09:00:00"),
    {"tracking_number": "BJ1"},
])
def test_a_receipt_that_does_not_fit_is_a_bad_answer(answer):
    with pytest.raises(BadAnswer):
        submit(mock_client(fixed(201, answer)))


# --- batches ---------------------------------------------------------------------------------

def outgoing(marker: str, kiosk: str = "K-CLIENT", local: str | None = None,
             **change: object) -> OutgoingSubmission:
    import dataclasses

    sub = dataclasses.replace(submission(marker, kiosk), **change)  # type: ignore[arg-type]
    return OutgoingSubmission(sub, local or f"ZZ-20300102-{uuid.uuid4().hex[:10].upper()}",
                              key())


def test_submit_applications_over_http(outbox_server):  # noqa: F811
    batch = [outgoing("batch-1"), outgoing("batch-2", service_item_code="NO-SUCH-ITEM"),
             outgoing("batch-3")]
    with HttpBackOffice(outbox_server.url, timeout_s=10) as bo:
        first = bo.submit_applications(batch)
        assert [type(o) for o in first] == [SubmissionReceipt, SubmissionRejected,
                                            SubmissionReceipt]
        rejected = first[1]
        assert isinstance(rejected, SubmissionRejected)
        assert (rejected.status, rejected.error) == (422, "unknown_service_item")
        receipts = [o for o in first if isinstance(o, SubmissionReceipt)]
        assert [r.local_tracking_number for r in receipts] == [
            batch[0].local_tracking_number, batch[2].local_tracking_number]
        assert [r.replayed for r in receipts] == [False, False]
        # Regrouped and resent (after a lost answer): replays, whatever the grouping.
        (alone,) = bo.submit_applications(batch[2:])
        assert isinstance(alone, SubmissionReceipt) and alone.replayed is True
        assert alone.tracking_number == receipts[1].tracking_number
        # And alone, as a fallback would send it: the same application.
        again = bo.submit_application(batch[0].submission,
                                      local_tracking_number=batch[0].local_tracking_number,
                                      idempotency_key=batch[0].idempotency_key)
        assert again.replayed and again.tracking_number == receipts[0].tracking_number
        assert bo.submit_applications([]) == []


def _multipart(request: httpx.Request) -> list[tuple[str, str | None, str, bytes]]:
    """(name, filename, content type, bytes) of every part, read with the standard library."""
    import email.parser
    import email.policy

    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        head + request.content)
    assert message.get_content_type() == "multipart/form-data"
    return [(part.get_param("name", header="content-disposition"), part.get_filename(),
             part.get_content_type(), part.get_payload(decode=True))
            for part in message.iter_parts()]


def test_a_batch_carries_every_byte_once_and_no_base64():
    seen: list[httpx.Request] = []
    batch = [outgoing("enc-1"), outgoing("enc-2", materials=()), outgoing("enc-3")]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"results": [
            {"local_tracking_number": o.local_tracking_number, "status": 201,
             "application": receipt_body(local_tracking_number=o.local_tracking_number)}
            for o in batch]})

    outcomes = mock_client(handler).submit_applications(batch)
    assert [o.local_tracking_number for o in outcomes] == [o.local_tracking_number
                                                           for o in batch]
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/api/v1/applications:batch")
    assert "Idempotency-Key" not in request.headers  # each item carries its own
    (meta, *parts) = _multipart(request)
    assert meta[0] == "submissions" and meta[1] is None
    items = json.loads(meta[3])
    assert [i["idempotency_key"] for i in items] == [o.idempotency_key for o in batch]
    assert [i["local_tracking_number"] for i in items] == [o.local_tracking_number
                                                           for o in batch]
    assert items[0]["applicant"] == {"document_type": "residentId", "id_number": APPLICANT_ID,
                                     "name": APPLICANT_NAME}
    import hashlib

    materials = [m for o in batch for m in o.submission.materials]
    assert [m for i in items for m in i["materials"]] == [
        {"code": m.code, "media_type": m.media_type,
         "sha256": hashlib.sha256(m.content).hexdigest()} for m in materials]
    assert [(name, media, content) for name, _, media, content in parts] == [
        ("materials", m.media_type, m.content) for m in materials]
    # Part names say where a part belongs, never who it is about.
    assert all(APPLICANT_NAME not in (filename or "") for _, filename, _, _ in parts)
    assert b"content_base64" not in request.content


@pytest.mark.parametrize(("status", "body", "expected"), [
    (404, {"error": "not_found", "message": "Not Found"}, BatchRefused),  # an older server
    (405, {"error": "method_not_allowed", "message": ""}, BatchRefused),
    (413, {"error": "http_413", "message": ""}, BatchRefused),
    (422, {"error": "invalid_batch", "message": ""}, BatchRefused),
    (400, {"error": "http_400", "message": ""}, BatchRefused),
    (401, {"error": "unauthorised", "message": ""}, BackOfficeRejected),
    (429, {"error": "too_many_requests", "message": ""}, BackOfficeRejected),
    (404, None, BadAnswer),  # a foreign page: not our back office at all
    (413, None, BatchRefused),  # a body limit's plain text (the server's, or a proxy's)
    (503, {"error": "database_unavailable", "message": ""}, BackOfficeUnavailable),
])
def test_batch_error_mapping(status, body, expected):
    handler = (fixed(status, content=b"<html>Not Found</html>") if body is None
               else fixed(status, body))
    with pytest.raises(expected) as caught:
        mock_client(handler, retry=RetryPolicy(attempts=1)).submit_applications(
            [outgoing("map")])
    assert type(caught.value) is expected
    if expected is BatchRefused:
        assert caught.value.status == status
        assert caught.value.error == (body["error"] if body else "content_too_large")


def _batch_answer(batch: list[OutgoingSubmission], **change: object) -> dict[str, object]:
    results = [{"local_tracking_number": o.local_tracking_number, "status": 201,
                "replayed": False,
                "application": receipt_body(local_tracking_number=o.local_tracking_number)}
               for o in batch]
    results[-1].update(change)
    return {"results": results}


@pytest.mark.parametrize("change", [
    {"local_tracking_number": "ZZ-20300102-SOMEBODYEL"},  # an answer for someone else
    {"application": receipt_body(local_tracking_number="ZZ-20300102-SOMEBODYEL")},
    {"application": None},  # 201 without its acknowledgement
    {"status": 500, "application": None, "error": {"error": "internal_error"}},
    {"status": 404, "application": None, "error": {"error": "not_found"}},
    {"status": 422, "application": None},  # a refusal without the contract's error
    {"application": receipt_body(submitted_at="2030-01-02T09:00:00")},
    {"status": "created"},
])
def test_a_batch_answer_that_does_not_fit_is_a_bad_answer(change):
    batch = [outgoing("fit-1"), outgoing("fit-2")]
    with pytest.raises(BadAnswer):
        mock_client(fixed(200, _batch_answer(batch, **change))).submit_applications(batch)


def test_a_batch_answer_with_a_missing_result_is_a_bad_answer():
    batch = [outgoing("count-1"), outgoing("count-2")]
    answer = _batch_answer(batch)
    answer["results"] = answer["results"][:1]  # type: ignore[index]
    with pytest.raises(BadAnswer, match="1 results for 2"):
        mock_client(fixed(200, answer)).submit_applications(batch)


def test_a_batch_is_retried_with_the_very_same_bytes():
    seen: list[httpx.Request] = []
    batch = [outgoing("retry-1"), outgoing("retry-2")]
    handler = flaky([fixed(503, {"error": "database_unavailable", "message": ""}),
                     _raise(httpx.ReadTimeout)],
                    httpx.Response(200, json=_batch_answer(batch)), seen)
    outcomes = mock_client(handler, retry=RetryPolicy(attempts=3)).submit_applications(batch)
    assert len(outcomes) == 2 and len(seen) == 3
    assert len({r.content for r in seen}) == 1
    assert len({r.headers["Content-Type"] for r in seen}) == 1


# --- retries ---------------------------------------------------------------------------------

def flaky(failures: list[Callable[[httpx.Request], httpx.Response]],
          then: httpx.Response, seen: list[httpx.Request]):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= len(failures):
            return failures[len(seen) - 1](request)
        return then
    return handler


def _raise(error: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)
    return handler


def test_keyed_write_is_retried_with_the_same_key_and_body():
    seen: list[httpx.Request] = []
    sleeps: list[float] = []
    handler = flaky([fixed(503, {"error": "database_unavailable", "message": ""}),
                     _raise(httpx.ConnectError)],
                    httpx.Response(201, json=receipt_body()), seen)
    policy = RetryPolicy(attempts=3, base_delay_s=0.2, max_delay_s=1.0)
    receipt = submit(mock_client(handler, retry=policy, sleeps=sleeps), idem="same-key-0001")
    assert receipt.tracking_number == "BJ20300102000001"
    assert len(seen) == 3
    assert {r.headers["Idempotency-Key"] for r in seen} == {"same-key-0001"}
    assert len({r.content for r in seen}) == 1
    # Full jitter under an exponential ceiling: 0.2 then 0.4.
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.2 and 0 <= sleeps[1] <= 0.4


def test_retries_stop_after_the_attempts_and_raise_the_last_failure():
    seen: list[httpx.Request] = []
    sleeps: list[float] = []
    bo = mock_client(flaky([_raise(httpx.ConnectError)] * 10, httpx.Response(200), seen),
                     retry=RetryPolicy(attempts=4), sleeps=sleeps)
    with pytest.raises(BackOfficeUnavailable, match="cannot reach"):
        bo.get_appointment("APT-1")
    assert (len(seen), len(sleeps)) == (4, 3)


def test_a_pause_beyond_the_budget_is_not_taken():
    seen: list[httpx.Request] = []
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=5, base_delay_s=10.0, max_delay_s=10.0, budget_s=0.5)
    bo = HttpBackOffice("http://backoffice.test", retry=policy, sleep=sleeps.append,
                        rng=random.Random(3),
                        transport=httpx.MockTransport(
                            flaky([_raise(httpx.ConnectError)] * 10, httpx.Response(200), seen)))
    bo._rng.uniform = lambda a, b: b  # type: ignore[method-assign]  # the full 10 s pause
    with pytest.raises(BackOfficeUnavailable):
        bo.ticket_categories("C")
    assert (len(seen), sleeps) == (1, [])


@pytest.mark.parametrize("answer", [
    fixed(200, content=b"garbage"),  # an answer that does not parse is not retried
    fixed(422, {"error": "unknown_service_item", "message": ""}),
    fixed(404, content=b"<html>Not Found</html>"),
])
def test_definite_answers_are_not_retried(answer):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    with pytest.raises(BackOfficeError):
        submit(mock_client(handler, retry=RetryPolicy(attempts=5)))
    assert len(seen) == 1


def test_tls_settings_need_https_and_loadable_files(tmp_path):
    with pytest.raises(BackOfficeConfigError, match="plain http"):
        HttpBackOffice("http://127.0.0.1:1", tls=TlsSettings())
    with pytest.raises(BackOfficeConfigError, match="CA file"):
        HttpBackOffice("https://127.0.0.1:1", tls=TlsSettings(ca_file=tmp_path / "none.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(BackOfficeConfigError, match="client certificate"):
        HttpBackOffice("https://127.0.0.1:1", tls=TlsSettings(client_cert=garbage))
    with pytest.raises(BackOfficeConfigError, match="without a client certificate"):
        HttpBackOffice("https://127.0.0.1:1", tls=TlsSettings(client_key=garbage))


# --- TLS against the real server -------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """The back office over HTTPS, requiring a client certificate from the test CA."""
    folder = tmp_path_factory.mktemp("tls")
    pki = make_pki(folder / "pki")
    from tests.outbox.fixtures import start_server

    plain = start_server(folder / "bo")
    server = SubmissionsBackOffice(port=plain.port, db_url=plain.db_url, seed=plain.seed,
                                   tls=(pki.server_cert, pki.server_key, pki.ca, pki.ca))
    with server:
        yield server, pki


def test_mutual_tls_with_the_right_certificates(tls_server):
    server, pki = tls_server
    assert server.url.startswith("https://")
    tls = TlsSettings(ca_file=pki.ca, client_cert=pki.client_cert, client_key=pki.client_key)
    with HttpBackOffice(server.url, timeout_s=10, tls=tls) as bo:
        assert bo.health() is True
        receipt = submit(bo, f"ZZ-20300102-{uuid.uuid4().hex[:10].upper()}")
        assert receipt.tracking_number.startswith("BJ")
        (batched,) = bo.submit_applications([outgoing("tls-batch")])
        assert isinstance(batched, SubmissionReceipt) and not batched.replayed


def test_untrusted_server_certificate_is_refused(tls_server):
    server, pki = tls_server
    sleeps: list[float] = []
    tls = TlsSettings(ca_file=pki.other_ca, client_cert=pki.client_cert,
                      client_key=pki.client_key)
    with HttpBackOffice(server.url, timeout_s=10, tls=tls, sleep=sleeps.append) as bo:
        assert bo.health() is False
        with pytest.raises(TlsFailure, match="certificate verify failed|certificate"):
            submit(bo)
    assert sleeps == []  # not retried: waiting does not make a certificate trusted


@pytest.mark.parametrize("which", ["none", "stranger"])
def test_server_refuses_a_kiosk_without_an_accepted_certificate(tls_server, which):
    server, pki = tls_server
    tls = (TlsSettings(ca_file=pki.ca) if which == "none" else
           TlsSettings(ca_file=pki.ca, client_cert=pki.other_client_cert,
                       client_key=pki.other_client_key))
    with HttpBackOffice(server.url, timeout_s=10, tls=tls, retry=RetryPolicy(attempts=1)) as bo:
        assert bo.health() is False
        with pytest.raises(BackOfficeUnavailable):
            submit(bo)


# --- property: whatever the server says, the client answers with a BackOfficeError ----------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=12)

_near_receipts = st.fixed_dictionaries(
    {}, optional={"tracking_number": st.one_of(st.just("BJ1"), st.text(max_size=70), _json_values),
                  "local_tracking_number": st.one_of(st.just(LOCAL), _json_values),
                  "status": st.one_of(st.sampled_from([s.value for s in ApplicationStatus]),
                                      _json_values),
                  "submitted_at": st.one_of(st.just("2030-01-02T09:00:00+08:00"),
                                            st.text(max_size=30), _json_values),
                  "error": _json_values, "message": _json_values})

_bodies = st.one_of(
    st.binary(max_size=200).map(lambda b: ("raw", b)),
    _json_values.map(lambda v: ("json", v)),
    _near_receipts.map(lambda v: ("json", v)))

_statuses = st.one_of(st.sampled_from([200, 201, 204, 301, 400, 404, 409, 413, 422, 429, 500,
                                       502, 503]), st.integers(100, 599))


def _respond(status: int, body: tuple[str, object]):
    kind, value = body
    if kind == "raw":
        return fixed(status, content=value)  # type: ignore[arg-type]
    # json.dumps writes NaN/Infinity, which are not JSON: a server may still send them.
    return fixed(status, content=json.dumps(value).encode(),
                 headers={"Content-Type": "application/json"})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=_statuses, body=_bodies)
def test_any_answer_to_a_submission_is_a_receipt_or_a_backoffice_error(status, body):
    bo = mock_client(_respond(status, body))
    try:
        receipt = submit(bo)
    except BackOfficeError as exc:
        assert APPLICANT_ID not in str(exc) and APPLICANT_NAME not in str(exc)
        if isinstance(exc, SubmissionRejected):
            assert 400 <= status < 500  # only a refusal in the contract's words quarantines
            assert exc.error
    else:
        # Accepted only when everything about it is right.
        assert 200 <= status < 300
        assert receipt.local_tracking_number == LOCAL
        assert receipt.submitted_at.tzinfo is not None


_near_batches = st.fixed_dictionaries({}, optional={
    "results": st.one_of(
        _json_values,
        st.lists(st.fixed_dictionaries({}, optional={
            "local_tracking_number": st.one_of(st.just(LOCAL), st.none(), _json_values),
            "status": st.one_of(st.sampled_from([201, 200, 409, 422, 500]), _json_values),
            "replayed": st.one_of(st.booleans(), _json_values),
            "application": st.one_of(st.just(receipt_body()), _near_receipts, _json_values),
            "error": st.one_of(st.just({"error": "unknown_service_item", "message": ""}),
                               _json_values)}), max_size=3))})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=_statuses,
       body=st.one_of(_bodies, _near_batches.map(lambda v: ("json", v))))
def test_any_answer_to_a_batch_is_outcomes_or_a_backoffice_error(status, body):
    batch = [OutgoingSubmission(submission("prop", "K-CLIENT"), LOCAL, "prop-key-0001")]
    bo = mock_client(_respond(status, body), retry=RetryPolicy(attempts=1))
    try:
        outcomes = bo.submit_applications(batch)
    except BackOfficeError as exc:
        assert APPLICANT_ID not in str(exc) and APPLICANT_NAME not in str(exc)
        if isinstance(exc, BatchRefused):
            assert 400 <= status < 500 and exc.error
    else:
        assert 200 <= status < 300
        (outcome,) = outcomes
        if isinstance(outcome, SubmissionRejected):
            # Only a refusal in the contract's words sets a submission aside.
            assert outcome.status in (400, 409, 413, 415, 422) and outcome.error
        else:
            assert outcome.local_tracking_number == LOCAL
            assert outcome.submitted_at.tzinfo is not None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=_statuses, body=_bodies,
       call=st.sampled_from(["health", "appointment", "categories", "ticket", "applications",
                             "progress", "staff"]))
def test_any_answer_to_any_call_is_handled(status, body, call):
    bo = mock_client(_respond(status, body))
    calls = {
        "health": bo.health,
        "appointment": lambda: bo.get_appointment("APT-1"),
        "categories": lambda: bo.ticket_categories("C"),
        "ticket": lambda: bo.take_ticket("A", kiosk_id="K", centre_id="C", idempotency_key=key()),
        "applications": lambda: bo.find_applications(id_number=APPLICANT_ID,
                                                     document_type="residentId", session_id="s"),
        "progress": lambda: bo.application_progress("BJ1"),
        "staff": lambda: bo.call_staff(kiosk_id="K", centre_id="C", session_id="s"),
    }
    try:
        result = calls[call]()
    except BackOfficeError as exc:
        assert APPLICANT_ID not in str(exc)
    else:
        if call == "health":
            assert result is False or (status == 200)
        else:
            assert 200 <= status < 300


# --- catalogue, 自助出件, 好差评 (over loopback) ------------------------------------------------

@pytest.fixture(scope="module")
def private_server(tmp_path_factory) -> Iterator[str]:
    """A back office of our own: these tests collect a result, which the shared one must keep."""
    from tests.conftest import make_test_seed, write_seed

    workdir = tmp_path_factory.mktemp("client-bo")
    seed = write_seed(workdir / "seed.json", make_test_seed())
    with EmbeddedBackOffice(port=free_port(), db_url=f"sqlite:///{workdir / 'bo.db'}",
                            seed=seed, timezone="Asia/Shanghai") as server:
        yield server.url


def test_catalogue_is_fetched_then_revalidated_by_version(client, backoffice_server):
    from flows.ports import ServiceCatalogue

    catalogue = client.service_catalogue(backoffice_server.centre_id)
    assert isinstance(catalogue, ServiceCatalogue)
    assert {i.code for i in catalogue.items} == {"SB001", "YB001", "HJ001"}
    assert client.service_catalogue(backoffice_server.centre_id,
                                    etag=catalogue.version) is None
    assert client.service_catalogue(backoffice_server.centre_id, etag="stale") == catalogue
    item = client.service_item("YB001", centre_id=backoffice_server.centre_id)
    assert item.name == "异地就医备案" and item.department == "医保局"
    with pytest.raises(BackOfficeRejected):
        client.service_item("NOPE", centre_id=backoffice_server.centre_id)


def test_progress_carries_the_history(client):
    summary = client.application_progress("T-APP-NEW")
    assert [s.step for s in summary.history] == [ApplicationStatus.SUBMITTED,
                                                 ApplicationStatus.READY]


def test_ready_results_then_confirm_collected_once(private_server):
    from tests.conftest import APPLICANT_ID

    who = {"id_number": APPLICANT_ID, "document_type": "residentId"}
    with HttpBackOffice(private_server, timeout_s=5) as bo:
        [result] = bo.ready_results(**who, session_id="s-pick")
        assert result.tracking_number == "T-APP-NEW" and result.content.startswith(b"%PDF")
        assert APPLICANT_ID not in repr(result)
        idem = key()
        at = bo.confirm_collected("T-APP-NEW", **who, kiosk_id="K1", session_id="s-pick",
                                  idempotency_key=idem)
        # A resend after a lost answer is answered the same, not refused.
        assert bo.confirm_collected("T-APP-NEW", **who, kiosk_id="K1", session_id="s-pick",
                                    idempotency_key=idem) == at
        assert bo.ready_results(**who, session_id="s-pick") == []
        with pytest.raises(BackOfficeRejected, match="already_collected"):
            bo.confirm_collected("T-APP-NEW", **who, kiosk_id="K1", session_id="s-pick",
                                 idempotency_key=key())


def test_a_damaged_document_is_not_accepted():
    import base64

    from kiosk.client import BadAnswer

    body = [{"tracking_number": "BJ1", "service_name": "s", "department": "d",
             "result_title": "t", "ready_at": "2030-01-01T00:00:00+08:00",
             "media_type": "application/pdf", "sha256": "0" * 64,
             "content_base64": base64.b64encode(b"%PDF-tampered").decode()}]
    bo = mock_client(lambda request: httpx.Response(200, json=body))
    with pytest.raises(BadAnswer, match="sha256"):
        bo.ready_results(id_number="110101199003074514", document_type="residentId",
                         session_id="s")


def test_rating_is_sent_once_per_key(private_server):
    from flows.ports import Rating, RatingLevel

    rating = Rating(level=RatingLevel.DISSATISFIED, kiosk_id="K1", centre_id="TEST-01",
                    indicators=("wait_too_long",), comment="等了很久", session_id="s-rate")
    with HttpBackOffice(private_server, timeout_s=5) as bo:
        idem = key()
        first = bo.rate(rating, idempotency_key=idem)
        assert bo.rate(rating, idempotency_key=idem) == first
        assert bo.rate(rating, idempotency_key=key()) != first
        with pytest.raises(BackOfficeRejected, match="indicators_required"):
            bo.rate(Rating(level=RatingLevel.VERY_DISSATISFIED, kiosk_id="K1",
                           centre_id="TEST-01", session_id="s"), idempotency_key=key())
