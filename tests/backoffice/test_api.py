"""The back office's HTTP API, exercised over loopback against the real server process."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from backoffice import models
from backoffice.db import SessionFactory, init_schema, make_engine
from backoffice.seed import SeedError, load_seed, read_seed_file
from kiosk.launcher import EmbeddedBackOffice, EmbeddedBackOfficeError, free_port

REPO = Path(__file__).resolve().parents[2]
DEMO_SEED = REPO / "assets" / "seed" / "demo.json"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def api(backoffice_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=backoffice_server.api, timeout=10, trust_env=False) as client:
        yield client


def key() -> str:
    return f"test-{uuid.uuid4()}"


def check_in(api: httpx.Client, code: str, centre_id: str, idem: str | None = None,
             kiosk_id: str = "KIOSK-T1") -> httpx.Response:
    headers = {"Idempotency-Key": idem} if idem is not None else {}
    return api.post(f"/appointments/{code}/check-in", headers=headers,
                    json={"kiosk_id": kiosk_id, "centre_id": centre_id})


def take(api: httpx.Client, centre_id: str, category: str, idem: str | None = None) -> httpx.Response:
    return api.post("/queue-tickets", headers={"Idempotency-Key": idem or key()},
                    json={"centre_id": centre_id, "category_code": category, "kiosk_id": "KIOSK-T1"})


def seq_of(number: str) -> int:
    return int(number[1:])


# --- health, lookup --------------------------------------------------------------------------

def test_health(api):
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "0.1.0"}


def test_lookup_returns_the_seeded_appointment(api, backoffice_server):
    code = backoffice_server.seed_codes["tomorrow"]
    response = api.get(f"/appointments/{code}")
    assert response.status_code == 200
    body = response.json()
    today = dt.datetime.now(SHANGHAI).date()
    assert body == {
        "code": code, "appointment_id": f"ID-{code}", "centre_id": backoffice_server.centre_id,
        "centre_name": "测试市测试区政务服务中心", "service_item_code": "SB001",
        "service_name": "社会保障卡申领", "date": (today + dt.timedelta(days=1)).isoformat(),
        "slot_start": "09:00", "slot_end": "09:30",
        "applicant_name": backoffice_server.applicant_name, "status": "booked"}


def test_lookup_unknown_code_is_404(api):
    response = api.get("/appointments/NO-SUCH-CODE")
    assert response.status_code == 404
    assert response.json()["error"] == "appointment_not_found"
    assert response.json()["message"]


@pytest.mark.parametrize("code", ["has space", "x" * 65, "中文码", "semi;colon", "dot.ted"])
def test_malformed_code_is_422(api, code):
    response = api.get(f"/appointments/{code}")
    assert response.status_code == 422
    assert response.json()["error"] == "malformed_code"
    assert check_in(api, code, "TEST-01", key()).json()["error"] == "malformed_code"


def test_longest_allowed_code_is_well_formed(api):
    response = api.get("/appointments/" + "x" * 64)
    assert response.status_code == 404
    assert response.json()["error"] == "appointment_not_found"


# --- check-in --------------------------------------------------------------------------------

def test_check_in_issues_a_ticket_and_marks_the_appointment(api, backoffice_server):
    code = backoffice_server.fresh_code()
    item = backoffice_server.appointment(code)["service_item_code"]
    prefix = {"SB001": "A", "YB001": "B", "HJ001": "C"}[item]
    response = check_in(api, code, backoffice_server.centre_id, key())
    assert response.status_code == 200
    ticket = response.json()["ticket"]
    assert re.fullmatch(rf"{prefix}\d{{3}}", ticket["number"])
    assert ticket["appointment_id"] == f"ID-{code}"
    assert ticket["centre_name"] == "测试市测试区政务服务中心"
    assert ticket["floor"] == "二楼"
    assert ticket["area"] == f"{prefix}区"
    assert ticket["window"] == f"{ord(prefix) - 64}号窗口"
    assert ticket["waiting_ahead"] == seq_of(ticket["number"]) - 1
    issued = dt.datetime.fromisoformat(ticket["issued_at"])
    assert issued.utcoffset() == dt.timedelta(hours=8)
    assert api.get(f"/appointments/{code}").json()["status"] == "checked_in"


def test_replay_with_the_same_key_returns_the_same_ticket_and_issues_no_other(api, backoffice_server):
    code, next_code = backoffice_server.fresh_code(), backoffice_server.fresh_code()
    # Consecutive pool codes cycle through items: find a later one in the same queue.
    while backoffice_server.appointment(next_code)["service_item_code"] != \
            backoffice_server.appointment(code)["service_item_code"]:
        next_code = backoffice_server.fresh_code()
    idem = key()
    first = check_in(api, code, backoffice_server.centre_id, idem)
    again = check_in(api, code, backoffice_server.centre_id, idem)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    following = check_in(api, next_code, backoffice_server.centre_id, key()).json()["ticket"]
    assert seq_of(following["number"]) == seq_of(first.json()["ticket"]["number"]) + 1


def test_check_in_under_a_different_key_is_409(api, backoffice_server):
    code = backoffice_server.fresh_code()
    assert check_in(api, code, backoffice_server.centre_id, key()).status_code == 200
    response = check_in(api, code, backoffice_server.centre_id, key())
    assert response.status_code == 409
    assert response.json()["error"] == "already_checked_in"


def test_seeded_checked_in_appointment_is_409(api, backoffice_server):
    response = check_in(api, backoffice_server.seed_codes["checked_in"],
                        backoffice_server.centre_id, key())
    assert response.status_code == 409
    assert response.json()["error"] == "already_checked_in"


def test_same_key_for_a_different_request_is_refused(api, backoffice_server):
    code, other = backoffice_server.fresh_code(), backoffice_server.fresh_code()
    idem = key()
    assert check_in(api, code, backoffice_server.centre_id, idem).status_code == 200
    response = check_in(api, other, backoffice_server.centre_id, idem)
    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"
    assert api.get(f"/appointments/{other}").json()["status"] == "booked"


@pytest.mark.parametrize(("idem", "error"), [
    (None, "idempotency_key_required"),
    ("short", "malformed_idempotency_key"),
    ("k" * 129, "malformed_idempotency_key"),
])
def test_check_in_needs_a_valid_idempotency_key(api, backoffice_server, idem, error):
    code = backoffice_server.fresh_code()
    response = check_in(api, code, backoffice_server.centre_id, idem)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert api.get(f"/appointments/{code}").json()["status"] == "booked"


def test_check_in_at_the_wrong_centre_is_refused(api, backoffice_server):
    code = backoffice_server.fresh_code()
    response = check_in(api, code, backoffice_server.other_centre_id, key())
    assert response.status_code == 422
    assert response.json()["error"] == "wrong_centre"
    assert api.get(f"/appointments/{code}").json()["status"] == "booked"
    other = backoffice_server.seed_codes["other_centre"]
    assert check_in(api, other, backoffice_server.centre_id, key()).json()["error"] == "wrong_centre"


@pytest.mark.parametrize("which", ["tomorrow", "yesterday"])
def test_check_in_on_another_day_is_refused(api, backoffice_server, which):
    code = backoffice_server.seed_codes[which]
    response = check_in(api, code, backoffice_server.centre_id, key())
    assert response.status_code == 422
    assert response.json()["error"] == "not_today"
    assert api.get(f"/appointments/{code}").json()["status"] == "booked"


def test_check_in_of_a_cancelled_appointment_is_refused(api, backoffice_server):
    response = check_in(api, backoffice_server.seed_codes["cancelled"],
                        backoffice_server.centre_id, key())
    assert response.status_code == 422
    assert response.json()["error"] == "cancelled"


def test_check_in_of_an_unknown_code_is_404(api, backoffice_server):
    response = check_in(api, "NO-SUCH-CODE", backoffice_server.centre_id, key())
    assert response.status_code == 404
    assert response.json()["error"] == "appointment_not_found"


def test_check_in_with_a_bad_body_is_invalid_request(api, backoffice_server):
    code = backoffice_server.fresh_code()
    response = api.post(f"/appointments/{code}/check-in", headers={"Idempotency-Key": key()},
                        json={"kiosk_id": "K"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert "centre_id" in response.json()["message"]
    garbage = api.post(f"/appointments/{code}/check-in", headers={"Idempotency-Key": key(),
                       "Content-Type": "application/json"}, content=b"{not json")
    assert garbage.status_code == 422
    assert garbage.json()["error"] == "invalid_request"
    assert api.get(f"/appointments/{code}").json()["status"] == "booked"


# --- queue -----------------------------------------------------------------------------------

def test_ticket_categories(api, backoffice_server):
    response = api.get(f"/centres/{backoffice_server.centre_id}/ticket-categories")
    assert response.status_code == 200
    assert response.json() == [
        {"code": "A", "name": "社会保障", "floor": "二楼", "area": "A区", "window": "1号窗口"},
        {"code": "B", "name": "医疗保障", "floor": "二楼", "area": "B区", "window": "2号窗口"},
        {"code": "C", "name": "户籍证明", "floor": "二楼", "area": "C区", "window": "3号窗口"}]
    missing = api.get("/centres/NO-CENTRE/ticket-categories")
    assert missing.status_code == 404
    assert missing.json()["error"] == "centre_not_found"


def test_ticket_numbers_count_per_category(api, backoffice_server):
    centre = backoffice_server.numbering_centre_id
    issued = [take(api, centre, category) for category in ["A", "A", "B", "A", "B"]]
    assert [r.status_code for r in issued] == [201] * 5
    tickets = [r.json()["ticket"] for r in issued]
    assert [t["number"] for t in tickets] == ["A001", "A002", "B001", "A003", "B002"]
    assert [t["waiting_ahead"] for t in tickets] == [0, 1, 0, 2, 1]
    assert [t["service_name"] for t in tickets] == ["社会保障", "社会保障", "医疗保障", "社会保障", "医疗保障"]
    assert all(t["appointment_id"] is None for t in tickets)
    assert tickets[0]["centre_name"] == "编号测试中心"


def test_concurrent_tickets_get_distinct_consecutive_numbers(api, backoffice_server):
    centre = backoffice_server.concurrency_centre_id

    def one(_: int) -> str:
        with httpx.Client(base_url=backoffice_server.api, timeout=30, trust_env=False) as c:
            response = take(c, centre, "A")
            assert response.status_code == 201, response.text
            return response.json()["ticket"]["number"]

    with ThreadPoolExecutor(max_workers=12) as pool:
        numbers = list(pool.map(one, range(30)))
    assert sorted(numbers) == [f"A{n:03d}" for n in range(1, 31)]


def test_queue_ticket_replay_returns_the_same_ticket(api, backoffice_server):
    idem = key()
    first = take(api, backoffice_server.centre_id, "C", idem)
    again = take(api, backoffice_server.centre_id, "C", idem)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    after = take(api, backoffice_server.centre_id, "C").json()["ticket"]
    assert seq_of(after["number"]) == seq_of(first.json()["ticket"]["number"]) + 1
    changed = take(api, backoffice_server.centre_id, "A", idem)
    assert changed.status_code == 422
    assert changed.json()["error"] == "idempotency_key_reused"


def test_queue_ticket_errors(api, backoffice_server):
    unknown_category = take(api, backoffice_server.centre_id, "Z")
    assert unknown_category.status_code == 404
    assert unknown_category.json()["error"] == "category_not_found"
    unknown_centre = take(api, "NO-CENTRE", "A")
    assert unknown_centre.status_code == 404
    assert unknown_centre.json()["error"] == "centre_not_found"
    no_key = api.post("/queue-tickets", json={"centre_id": backoffice_server.centre_id,
                                              "category_code": "A", "kiosk_id": "K"})
    assert no_key.status_code == 400
    assert no_key.json()["error"] == "idempotency_key_required"


# --- help requests, catalogue ----------------------------------------------------------------

def test_help_requests_are_listed_per_centre(api, backoffice_server):
    session_id = f"session-{uuid.uuid4()}"
    created = api.post("/help-requests", json={"kiosk_id": "KIOSK-T1", "session_id": session_id,
                                               "centre_id": backoffice_server.centre_id})
    assert created.status_code == 201
    body = created.json()
    assert isinstance(body["id"], int)
    assert dt.datetime.fromisoformat(body["created_at"]).utcoffset() == dt.timedelta(hours=8)

    listed = api.get("/help-requests", params={"centre_id": backoffice_server.centre_id}).json()
    mine = [r for r in listed if r["id"] == body["id"]]
    assert mine == [{"id": body["id"], "kiosk_id": "KIOSK-T1", "centre_id": "TEST-01",
                     "session_id": session_id, "status": "open",
                     "created_at": body["created_at"]}]
    elsewhere = api.get("/help-requests", params={"centre_id": backoffice_server.other_centre_id})
    assert body["id"] not in [r["id"] for r in elsewhere.json()]


def test_help_request_replay_with_a_key_creates_one(api, backoffice_server):
    idem = key()
    payload = {"kiosk_id": "KIOSK-T1", "centre_id": backoffice_server.centre_id,
               "session_id": "s-replay"}
    first = api.post("/help-requests", json=payload, headers={"Idempotency-Key": idem})
    again = api.post("/help-requests", json=payload, headers={"Idempotency-Key": idem})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    listed = api.get("/help-requests", params={"centre_id": backoffice_server.centre_id}).json()
    assert [r["session_id"] for r in listed].count("s-replay") == 1


def test_help_request_for_an_unknown_centre_is_404(api):
    response = api.post("/help-requests", json={"kiosk_id": "K", "centre_id": "NO-CENTRE",
                                                "session_id": "s"})
    assert response.status_code == 404
    assert response.json()["error"] == "centre_not_found"
    assert api.get("/help-requests", params={"centre_id": "NO-CENTRE"}).status_code == 404


def test_service_items(api, backoffice_server):
    response = api.get("/service-items", params={"centre_id": backoffice_server.centre_id})
    assert response.status_code == 200
    assert [(i["code"], i["name"], i["category_code"], i["department"])
            for i in response.json()["items"]] == [("HJ001", "户籍证明开具", "C", "公安分局"),
                                          ("SB001", "社会保障卡申领", "A", "人社局"),
                                          ("YB001", "异地就医备案", "B", "医保局")]
    missing = api.get("/service-items", params={"centre_id": "NO-CENTRE"})
    assert missing.status_code == 404
    assert missing.json()["error"] == "centre_not_found"


def test_centres(api):
    ids = [c["id"] for c in api.get("/centres").json()]
    assert ids == sorted(["TEST-01", "TEST-02", "TEST-NUM", "TEST-CONC"])


def test_unknown_route_has_the_error_body(api):
    response = api.get("/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "Not Found"}
    wrong_method = api.delete("/health")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


def test_openapi_lists_every_path(backoffice_server):
    document = httpx.get(f"{backoffice_server.url}/openapi.json", trust_env=False).json()
    assert set(document["paths"]) == {
        "/api/v1/health",
        "/api/v1/appointments/{code}",
        "/api/v1/appointments/{code}/check-in",
        "/api/v1/appointments/{code}/signed-code",
        "/api/v1/centres",
        "/api/v1/centres/{centre_id}/ticket-categories",
        "/api/v1/queue-tickets",
        "/api/v1/help-requests",
        "/api/v1/service-items",
        "/api/v1/applications",
        "/api/v1/applications:batch",
        "/api/v1/applications/search",
        "/api/v1/applications/progress/{number}",
        "/api/v1/service-items/{code}",
        "/api/v1/applications/ready-for-pickup",
        "/api/v1/applications/{number}/collected",
        "/api/v1/ratings",
        "/api/v1/ratings/scheme",
        "/api/v1/kiosks",
        "/api/v1/kiosks/{kiosk_id}/heartbeat",
    }
    assert set(document["paths"]["/api/v1/help-requests"]) == {"get", "post"}
    check_in_op = document["paths"]["/api/v1/appointments/{code}/check-in"]["post"]
    assert {"200", "404", "409", "422"} <= set(check_in_op["responses"])
    assert check_in_op["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" and p["required"]
               for p in check_in_op["parameters"])
    schemas = document["components"]["schemas"]
    assert schemas["Error"]["description"]
    assert schemas["QueueTicket"]["description"]
    assert document["info"]["version"] == "0.1.0"


# --- seed loading ----------------------------------------------------------------------------

@pytest.fixture
def memory_session() -> Iterator[Session]:
    engine = make_engine("sqlite://")
    init_schema(engine)
    with SessionFactory(engine).session() as session:
        yield session
    engine.dispose()


def count(session: Session, model: type[models.Base]) -> int:
    return len(session.query(model).all())


def test_load_seed_is_idempotent(memory_session, test_seed):
    seed = test_seed
    today = dt.date(2030, 5, 17)
    first = load_seed(memory_session, seed, today)
    assert first.inserted == {"centres": 4, "ticket_categories": 7, "service_items": 4,
                              "appointments": len(seed["appointments"]),
                              "applications": len(seed["applications"])}
    second = load_seed(memory_session, seed, today + dt.timedelta(days=1))
    assert second.total == 0
    assert count(memory_session, models.Appointment) == len(seed["appointments"])
    assert count(memory_session, models.Application) == len(seed["applications"])
    tomorrow = memory_session.query(models.Appointment).filter_by(code="T-TOMORROW").one()
    assert tomorrow.date == dt.date(2030, 5, 18)


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda s: s["centres"][0]["service_items"][0].update(category_code="Q"), "unknown ticket category"),
    (lambda s: s["appointments"][0].update(centre_id="NOWHERE"), "unknown centre"),
    (lambda s: s["appointments"][0].update(service_item_code="NOPE"), "no service item"),
    (lambda s: s["appointments"][0].update(slot_start="25:00"), "appointments.0.slot_start"),
    (lambda s: s["appointments"][0].update(status="lost"), "appointments.0.status"),
    (lambda s: s["centres"][0].update(typo=1), "centres.0.typo"),
])
def test_load_seed_rejects_bad_data_and_writes_nothing(memory_session, test_seed, mutate, where):
    seed = test_seed
    mutate(seed)
    with pytest.raises(SeedError, match=re.escape(where)):
        load_seed(memory_session, seed, dt.date(2030, 1, 1))
    assert count(memory_session, models.Centre) == 0


def test_demo_seed_loads_and_documents_its_codes(memory_session):
    data = read_seed_file(DEMO_SEED)
    result = load_seed(memory_session, data, dt.date(2030, 1, 1))
    assert result.inserted["centres"] >= 2
    assert result.inserted["service_items"] >= 8
    comment = " ".join(data["_comment"])
    codes = {a["code"]: a for a in data["appointments"]}
    assert all(re.search(re.escape(code.split("-")[-1]), comment) for code in codes)
    assert codes["APT-DEMO-0001"]["day_offset"] == 0 and codes["APT-DEMO-0001"]["status"] == "booked"
    assert {a["status"] for a in codes.values()} == {"booked", "checked_in", "cancelled"}
    assert {a["day_offset"] for a in codes.values()} == {-1, 0, 1}
    assert data["centres"][0]["id"] == "530102-01"


def test_read_seed_file_reports_bad_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  oops", encoding="utf-8")
    with pytest.raises(SeedError, match="not JSON: line 2"):
        read_seed_file(bad)
    with pytest.raises(SeedError, match="cannot read"):
        read_seed_file(tmp_path / "missing.json")


# --- the program: restart, reset, port in use -------------------------------------------------

def test_restart_keeps_state_and_reset_reloads(tmp_path, test_seed):
    seed_path = tmp_path / "seed.json"
    seed_path.write_text(json.dumps(test_seed, ensure_ascii=False), encoding="utf-8")
    db_url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'bo.db'}"

    def run(reset: bool = False) -> EmbeddedBackOffice:
        return EmbeddedBackOffice(port=free_port(), db_url=db_url, seed=seed_path, reset=reset)

    with run() as server, httpx.Client(base_url=f"{server.url}/api/v1", trust_env=False) as api:
        assert check_in(api, "T-FRESH-001", "TEST-01", key()).status_code == 200
    assert (tmp_path / "nested" / "dir" / "bo.db").is_file()

    with run() as server, httpx.Client(base_url=f"{server.url}/api/v1", trust_env=False) as api:
        assert api.get("/appointments/T-FRESH-001").json()["status"] == "checked_in"
        assert len(api.get("/centres").json()) == 4
        assert len(api.get("/service-items", params={"centre_id": "TEST-01"}).json()["items"]) == 3

    with run(reset=True) as server, httpx.Client(base_url=f"{server.url}/api/v1",
                                                 trust_env=False) as api:
        assert api.get("/appointments/T-FRESH-001").json()["status"] == "booked"


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backoffice", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_port_in_use_is_one_clear_line_and_exit_2(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = _run_cli("--port", str(port), "--db", f"sqlite:///{tmp_path / 'bo.db'}",
                          cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"kiosk-backoffice: port {port} on 127.0.0.1 is in use; "
        "stop the other process or pass --port"]
    assert "Traceback" not in result.stdout + result.stderr


def test_console_script_reports_port_in_use_the_same_way(tmp_path):
    script = Path(sys.executable).parent / "kiosk-backoffice"
    if not script.exists():
        pytest.skip("kiosk-backoffice entry point not installed in this environment")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = subprocess.run([str(script), "--port", str(port), "--db",
                                 f"sqlite:///{tmp_path / 'bo.db'}"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"kiosk-backoffice: port {port} on 127.0.0.1 is in use; "
                                     "stop the other process or pass --port")


@pytest.mark.parametrize(("args", "message"), [
    (["--timezone", "Mars/Olympus"], "unknown timezone 'Mars/Olympus'"),
    (["--seed", "missing.json"], "cannot read seed file missing.json"),
])
def test_cli_operator_errors_are_one_line(tmp_path, args, message):
    result = _run_cli("--port", str(free_port()), "--db", f"sqlite:///{tmp_path / 'bo.db'}",
                      *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("kiosk-backoffice:")]
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in result.stderr


def test_launcher_reports_a_dying_server_with_its_output(tmp_path):
    bad_seed = tmp_path / "seed.json"
    bad_seed.write_text(json.dumps({"centres": "not a list"}), encoding="utf-8")
    server = EmbeddedBackOffice(port=free_port(), db_url=f"sqlite:///{tmp_path / 'bo.db'}",
                                seed=bad_seed)
    with pytest.raises(EmbeddedBackOfficeError) as caught:
        server.start()
    assert "exited with status 2" in str(caught.value)
    assert "seed data is not valid: centres" in str(caught.value)
    assert not server.running()


def test_launcher_refuses_a_port_someone_answers_on(tmp_path, backoffice_server):
    server = EmbeddedBackOffice(port=backoffice_server.process.port,
                                db_url=f"sqlite:///{tmp_path / 'bo.db'}")
    with pytest.raises(EmbeddedBackOfficeError, match="is in use"):
        server.start()
    assert server.pid is None


def test_application_search_finds_a_persons_applications_newest_first(api, backoffice_server):
    body = {"id_number": backoffice_server.applicant_id, "document_type": "residentId",
            "session_id": "s-1"}
    answer = api.post("/applications/search", json=body)
    assert answer.status_code == 200
    found = answer.json()
    assert [a["tracking_number"] for a in found] == ["T-APP-NEW", "T-APP-OLD"]
    assert found[0]["status"] == "ready" and found[0]["service_name"] == "社会保障卡申领"
    assert found[0]["submitted_at"].endswith("+08:00")
    # The same number on another kind of document is another person.
    passport = api.post("/applications/search", json={**body, "document_type": "passport"})
    assert [a["tracking_number"] for a in passport.json()] == ["T-APP-PASSPORT"]
    nobody = api.post("/applications/search", json={**body, "id_number": "110101199003070000"})
    assert nobody.json() == []


@pytest.mark.parametrize("bad", [{"id_number": "1101; drop", "document_type": "residentId"},
                                 {"id_number": "110101199003074514", "document_type": "bank"},
                                 {"document_type": "residentId"}])
def test_application_search_rejects_bad_requests(api, bad):
    answer = api.post("/applications/search", json={"session_id": "s", **bad})
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"
