"""``POST /api/v1/applications`` and the progress lookup, over HTTP against the real server."""

from __future__ import annotations

import base64
import copy
import hashlib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy

from backoffice.db import normalise_url
from kiosk.client import submission_body
from tests.outbox.kiosk_driver import APPLICANT_ID, APPLICANT_NAME, submission
from tests.outbox.peers import stored_applications


@pytest.fixture
def api(outbox_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{outbox_server.url}/api/v1", timeout=20,
                      trust_env=False) as client:
        yield client


def body(marker: str, kiosk: str = "K-API") -> dict[str, Any]:
    number = f"ZZ-20300102-{uuid.uuid4().hex[:10].upper()}"
    return submission_body(submission(marker, kiosk), number)


def post(api: httpx.Client, payload: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return api.post("/applications", json=payload, headers=headers)


def test_submit_and_replay(api, outbox_server) -> None:
    payload = body("api-replay", "K-API-REPLAY")
    key = str(uuid.uuid4())
    first = post(api, payload, key)
    assert first.status_code == 201, first.text
    answer = first.json()
    assert answer["local_tracking_number"] == payload["local_tracking_number"]
    assert answer["status"] == "submitted"
    assert answer["tracking_number"].startswith("BJ")
    assert first.headers["Idempotent-Replayed"] == "false"
    again = post(api, payload, key)
    assert (again.status_code, again.json()) == (201, answer)
    assert again.headers["Idempotent-Replayed"] == "true"
    stored = stored_applications(outbox_server.db_url, "K-API-REPLAY")
    assert [(s.tracking_number, s.marker) for s in stored] == [(answer["tracking_number"],
                                                                "api-replay")]
    # The bytes themselves are kept, with what the staff need to see them.
    engine = sqlalchemy.create_engine(normalise_url(outbox_server.db_url))
    try:
        with engine.connect() as connection:
            number = {"number": answer["tracking_number"]}
            rows = [tuple(r) for r in connection.execute(sqlalchemy.text(
                "SELECT code, media_type, size, sha256, content FROM application_materials "
                "WHERE tracking_number = :number ORDER BY position"), number)]
            app = tuple(connection.execute(sqlalchemy.text(
                "SELECT applicant_name, applicant_id_number, commitment_version, session_id, "
                "kiosk_id FROM applications WHERE tracking_number = :number"), number).one())
    finally:
        engine.dispose()
    sent = payload["materials"]
    assert [(c, t, z, d) for c, t, z, d, _ in rows] == [
        (m["code"], m["media_type"], len(base64.b64decode(m["content_base64"])), m["sha256"])
        for m in sent]
    assert [hashlib.sha256(content).hexdigest() for *_, content in rows] == [
        m["sha256"] for m in sent]
    assert app == (APPLICANT_NAME, APPLICANT_ID, "GZCN-2030-01", payload["session_id"],
                   "K-API-REPLAY")


def test_progress_by_either_number(api) -> None:
    payload = body("api-progress")
    answer = post(api, payload, str(uuid.uuid4())).json()
    by_local = api.get(f"/applications/progress/{payload['local_tracking_number']}")
    by_number = api.get(f"/applications/progress/{answer['tracking_number']}")
    assert by_local.status_code == by_number.status_code == 200
    assert by_local.json() == by_number.json()
    progress = by_local.json()
    assert progress["tracking_number"] == answer["tracking_number"]
    assert progress["local_tracking_number"] == payload["local_tracking_number"]
    assert progress["service_item_code"] == "SB001" and progress["status"] == "submitted"
    assert APPLICANT_NAME not in by_local.text and APPLICANT_ID not in by_local.text
    missing = api.get("/applications/progress/ZZ-20300102-NOSUCHNUMB")
    assert (missing.status_code, missing.json()["error"]) == (404, "application_not_found")
    seeded = api.get("/applications/progress/T-APP-NEW")  # not from a kiosk: no local number
    assert seeded.status_code == 200 and seeded.json()["local_tracking_number"] is None


def test_search_by_id_number_finds_it_once(api) -> None:
    payload = body("api-search")
    key = str(uuid.uuid4())
    number = post(api, payload, key).json()["tracking_number"]
    post(api, payload, key)
    found = api.post("/applications/search", json={
        "id_number": APPLICANT_ID.lower(), "document_type": "residentId", "session_id": "s"})
    assert found.status_code == 200
    assert [a["tracking_number"] for a in found.json()].count(number) == 1


def test_idempotency_key_is_required_and_not_reusable(api) -> None:
    payload = body("api-key")
    missing = post(api, payload)
    assert (missing.status_code, missing.json()["error"]) == (400, "idempotency_key_required")
    key = str(uuid.uuid4())
    assert post(api, payload, key).status_code == 201
    other = body("api-key-other")
    reused = post(api, other, key)
    assert (reused.status_code, reused.json()["error"]) == (422, "idempotency_key_reused")
    # The same local number under a new key: a second application would be a duplicate.
    taken = post(api, payload, str(uuid.uuid4()))
    assert (taken.status_code, taken.json()["error"]) == (409, "local_tracking_number_taken")


def _corrupt(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    target: Any = changed
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is KeyError:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return changed


@pytest.mark.parametrize(("path", "value", "error"), [
    ("materials.0.content_base64", "not base64 !!", "material_not_base64"),
    ("materials.0.sha256", "0" * 64, "material_digest_mismatch"),
    ("service_item_code", "NO-SUCH-ITEM", "unknown_service_item"),
    ("centre_id", "NO-SUCH-CENTRE", "unknown_centre"),
    ("form", {"x": "y" * 70_000}, "form_too_large"),
    ("applicant.document_type", "driverLicence", "invalid_request"),
    ("applicant", KeyError, "invalid_request"),
    ("commitment.signed_at", "2030-01-02T09:00:00", "invalid_request"),  # no offset
    ("materials.0.media_type", "image/gif", "invalid_request"),
    ("local_tracking_number", "has spaces/and slashes", "invalid_request"),
    ("unexpected", 1, "invalid_request"),
])
def test_invalid_submissions_are_422_with_a_code_and_no_echo(api, path, value, error) -> None:
    payload = _corrupt(body("api-invalid"), path, value)
    response = post(api, payload, str(uuid.uuid4()))
    assert response.status_code == 422
    assert response.json()["error"] == error
    assert APPLICANT_ID not in response.text and APPLICANT_NAME not in response.text
    progress = api.get(f"/applications/progress/{payload.get('local_tracking_number', 'x')}")
    assert progress.status_code in (404, 422)  # nothing was stored


def test_concurrent_resends_make_one_application(api, outbox_server) -> None:
    payload = body("api-race", "K-API-RACE")
    key = str(uuid.uuid4())
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(api, payload, key), range(8)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["tracking_number"] for a in answers}) == 1
    assert len(stored_applications(outbox_server.db_url, "K-API-RACE")) == 1
