"""``POST /api/v1/applications``, ``POST /api/v1/applications:batch`` and the progress lookup,
over HTTP against the real server."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy

from backoffice.db import normalise_url
from kiosk.client import OutgoingSubmission, batch_body, submission_body
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


# --- batches ---------------------------------------------------------------------------------

def batch_item(marker: str, kiosk: str = "K-API-BATCH") -> tuple[dict[str, Any], list[bytes]]:
    """One batch item (metadata) and its materials' bytes, as the kiosk's outbox sends them."""
    payload = body(marker, kiosk)
    contents = [base64.b64decode(m.pop("content_base64")) for m in payload["materials"]]
    payload["idempotency_key"] = str(uuid.uuid4())
    return payload, contents


def post_batch(api: httpx.Client, items: list[tuple[dict[str, Any], list[bytes]]],
               submissions: str | None = None) -> httpx.Response:
    parts = [("materials", (f"{i}-{j}", content, "image/jpeg"))
             for i, (_, contents) in enumerate(items) for j, content in enumerate(contents)]
    text = submissions if submissions is not None else json.dumps([m for m, _ in items])
    return api.post("/applications:batch", data={"submissions": text}, files=parts or None)


def test_a_batch_stores_each_item_in_order_and_answers_each(api, outbox_server) -> None:
    kiosk = "K-API-BATCH-ORDER"
    items = [batch_item(f"batch-{i}", kiosk) for i in range(3)]
    bad = copy.deepcopy(items[1])
    bad[0]["service_item_code"] = "NO-SUCH-ITEM"
    items[1] = bad
    answer = post_batch(api, items)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [(r["local_tracking_number"], r["status"], r["replayed"]) for r in results] == [
        (m["local_tracking_number"], status, False)
        for (m, _), status in zip(items, [201, 422, 201], strict=True)]
    assert results[1]["error"]["error"] == "unknown_service_item"
    assert results[1]["application"] is None
    stored = stored_applications(outbox_server.db_url, kiosk)
    # 办件编号 in batch order; the refused one is not stored; every byte arrived.
    assert [(s.tracking_number, s.local_tracking_number) for s in stored] == [
        (r["application"]["tracking_number"], r["local_tracking_number"])
        for r in (results[0], results[2])]
    assert [s.material_digests for s in stored] == [
        tuple(hashlib.sha256(c).hexdigest() for c in contents)
        for _, contents in (items[0], items[2])]
    # The same batch again: the stored ones replay, the refused one is refused again.
    again = post_batch(api, items).json()["results"]
    assert [(r["status"], r["replayed"]) for r in again] == [(201, True), (422, False),
                                                            (201, True)]
    assert [r["application"] for r in again] == [r["application"] for r in results]
    assert len(stored_applications(outbox_server.db_url, kiosk)) == 2
    assert APPLICANT_ID not in answer.text and APPLICANT_NAME not in answer.text


def test_alone_then_in_a_batch_is_a_replay(api, outbox_server) -> None:
    """A kiosk that sent a submission alone (fallback) and then in a batch (or the other way
    round) has made one application: the fingerprints are the same."""
    kiosk = "K-API-BATCH-TWIN"
    metadata, contents = batch_item("twin", kiosk)
    single = dict(metadata, materials=[
        dict(m, content_base64=base64.b64encode(c).decode()) for m, c in
        zip(metadata["materials"], contents, strict=True)])
    del single["idempotency_key"]
    first = post(api, single, metadata["idempotency_key"])
    assert first.status_code == 201
    (result,) = post_batch(api, [(metadata, contents)]).json()["results"]
    assert (result["status"], result["replayed"]) == (201, True)
    assert result["application"] == first.json()
    assert len(stored_applications(outbox_server.db_url, kiosk)) == 1


def test_within_a_batch_one_key_is_one_application(api, outbox_server) -> None:
    kiosk = "K-API-BATCH-DUP"
    item = batch_item("dup", kiosk)
    other = batch_item("dup-other", kiosk)
    other[0]["idempotency_key"] = item[0]["idempotency_key"]
    results = post_batch(api, [item, item, other]).json()["results"]
    assert [(r["status"], r["replayed"]) for r in results] == [(201, False), (201, True),
                                                               (422, False)]
    assert results[2]["error"]["error"] == "idempotency_key_reused"
    assert [s.marker for s in stored_applications(outbox_server.db_url, kiosk)] == ["dup"]


@pytest.mark.parametrize(("path", "value", "error"), [
    ("materials.0.sha256", "0" * 64, "material_digest_mismatch"),
    ("centre_id", "NO-SUCH-CENTRE", "unknown_centre"),
    ("applicant.document_type", "driverLicence", "invalid_request"),
    ("idempotency_key", "short", "invalid_request"),
    ("idempotency_key", KeyError, "invalid_request"),
    ("materials.0.content_base64", "aGk=", "invalid_request"),  # bytes belong in a part
    ("unexpected", 1, "invalid_request"),
])
def test_an_invalid_item_is_refused_alone(api, outbox_server, path, value, error) -> None:
    kiosk = "K-API-BATCH-BAD"
    before = len(stored_applications(outbox_server.db_url, kiosk))
    good, bad = batch_item("bad-ok", kiosk), batch_item("bad", kiosk)
    bad = (_corrupt(bad[0], path, value), bad[1])
    response = post_batch(api, [bad, good])
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [422, 201]
    assert results[0]["error"]["error"] == error
    assert APPLICANT_ID not in response.text and APPLICANT_NAME not in response.text
    assert len(stored_applications(outbox_server.db_url, kiosk)) == before + 1


@pytest.mark.parametrize(("change", "error"), [
    (lambda items: items[:1], "material_parts_mismatch"),  # parts of the second are extra
    ("not json", "invalid_batch"),
    ('{"an": "object"}', "invalid_batch"),
    ("[]", "invalid_batch"),
    ('[{"materials": "M1"}]', "invalid_batch"),
    (json.dumps([{}] * 33), "invalid_batch"),
])
def test_a_malformed_batch_is_refused_whole(api, change, error) -> None:
    items = [batch_item("whole-1"), batch_item("whole-2")]
    if callable(change):
        parts = [c for _, contents in items for c in contents]
        response = api.post("/applications:batch",
                            data={"submissions": json.dumps([m for m, _ in change(items)])},
                            files=[("materials", (str(i), c, "image/jpeg"))
                                   for i, c in enumerate(parts)])
    else:
        response = post_batch(api, items, submissions=change)
    assert (response.status_code, response.json()["error"]) == (422, error)
    for metadata, _ in items:
        progress = api.get(f"/applications/progress/{metadata['local_tracking_number']}")
        assert progress.status_code == 404  # nothing was stored


def test_a_batch_is_multipart(api) -> None:
    payload = body("not-multipart")
    response = api.post("/applications:batch", json=[payload])
    assert response.status_code in (400, 422)
    assert set(response.json()) == {"error", "message"}


def test_the_kiosk_encoding_is_what_the_server_reads(api, outbox_server) -> None:
    kiosk = "K-API-BATCH-CLIENT"
    outgoing = [OutgoingSubmission(submission(f"enc-{i}", kiosk),
                                   f"ZZ-20300102-{uuid.uuid4().hex[:10].upper()}",
                                   str(uuid.uuid4())) for i in range(3)]
    content, content_type = batch_body(outgoing)
    response = api.post("/applications:batch", content=content,
                        headers={"Content-Type": content_type})
    assert [r["status"] for r in response.json()["results"]] == [201, 201, 201]
    stored = stored_applications(outbox_server.db_url, kiosk)
    assert [s.local_tracking_number for s in stored] == [o.local_tracking_number
                                                         for o in outgoing]
    assert [s.material_digests for s in stored] == [
        tuple(hashlib.sha256(m.content).hexdigest() for m in o.submission.materials)
        for o in outgoing]


def test_a_batch_over_the_body_limit_is_413_before_it_is_read(outbox_server) -> None:
    import http.client
    from urllib.parse import urlsplit

    from backoffice.submissions import MAX_BATCH_BYTES

    # Announced over the limit: refused from the headers, before 64 MiB would have to arrive.
    # (httpx will not announce a length it does not send, hence http.client.)
    url = urlsplit(outbox_server.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=20)
    try:
        connection.putrequest("POST", "/api/v1/applications:batch")
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(MAX_BATCH_BYTES + 1))
        connection.endheaders(b"--x\r\n")
        response = connection.getresponse()
        assert response.status == 413  # plain text: the client maps any 413 to BatchRefused
    finally:
        connection.close()
