"""The staff web page: the whole loop from a kiosk submission to a result ready for pickup, and
the form protections (same origin, per-form token, optional staff token)."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from kiosk.client import (
    Applicant,
    ApplicationSubmission,
    Commitment,
    Material,
    submission_body,
)
from tests.backoffice.inprocess import APPLICANT_ID, CENTRE, client

ORIGIN = {"Origin": "http://testserver"}
PHOTO = b"\xff\xd8\xff\xe0fake-jpeg-bytes"


def submit(bo) -> str:
    submission = ApplicationSubmission(
        centre_id=CENTRE, kiosk_id="K1", session_id="s-staff", service_item_code="HJ001",
        applicant=Applicant("residentId", APPLICANT_ID, "测试申请人甲"), form={"用途": "入学"},
        commitment=Commitment("v1", dt.datetime(2030, 1, 1, tzinfo=dt.UTC)),
        materials=(Material("ID", "image/jpeg", PHOTO),))
    answer = bo.post("/api/v1/applications",
                     json=submission_body(submission, f"ZZ-{uuid.uuid4().hex[:10]}"),
                     headers={"Idempotency-Key": f"k-{uuid.uuid4()}"})
    assert answer.status_code == 201, answer.text
    return answer.json()["tracking_number"]


def csrf_of(page_html: str, action: str) -> str:
    form = re.search(rf'action="{re.escape(action)}"><input type="hidden" name="csrf" '
                     rf'value="([0-9a-f]+)"', page_html)
    assert form, f"no form for {action}"
    return form.group(1)


def act(bo, number: str, action: str, note: str = "", headers: dict | None = None):
    base = f"/staff/applications/{number}"
    page = bo.get(base).text
    path = f"{base}/actions/{action}"
    return bo.post(path, data={"csrf": csrf_of(page, path), "note": note},
                   headers=ORIGIN if headers is None else headers, follow_redirects=False)


@pytest.fixture
def bo(test_seed):
    with client(test_seed) as c:
        yield c


def test_a_submission_goes_from_the_list_to_ready_for_pickup(bo):
    number = submit(bo)
    listing = bo.get("/staff")
    assert listing.status_code == 200
    assert "公安分局" in listing.text and number in listing.text
    assert "staff token OFF" in listing.text
    detail = bo.get(f"/staff/applications/{number}")
    assert "测试申请人甲" in detail.text and APPLICANT_ID not in detail.text  # masked
    download = bo.get(f"/staff/applications/{number}/materials/0")
    assert download.content == PHOTO and download.headers["content-type"] == "image/jpeg"

    assert act(bo, number, "accept").status_code == 303
    assert act(bo, number, "approve", "材料齐全，准予办理").status_code == 303
    assert act(bo, number, "ready").status_code == 303
    progress = bo.get(f"/api/v1/applications/progress/{number}").json()
    assert [s["step"] for s in progress["history"]] == ["submitted", "accepted", "approved",
                                                        "ready"]
    ready = bo.post("/api/v1/applications/ready-for-pickup", json={
        "id_number": APPLICANT_ID, "document_type": "residentId", "session_id": "s"}).json()
    assert number in [r["tracking_number"] for r in ready]
    result = bo.get(f"/staff/applications/{number}/result")
    assert result.content.startswith(b"%PDF")

    # Handed over at the desk (a kiosk's print failed and staff reprinted the kept copy).
    assert act(bo, number, "hand_over").status_code == 303
    progress = bo.get(f"/api/v1/applications/progress/{number}").json()
    assert progress["status"] == "collected" and progress["history"][-1]["step"] == "collected"
    ready = bo.post("/api/v1/applications/ready-for-pickup", json={
        "id_number": APPLICANT_ID, "document_type": "residentId", "session_id": "s"}).json()
    assert number not in [r["tracking_number"] for r in ready]  # the kiosk won't print it again
    assert "/actions/" not in bo.get(f"/staff/applications/{number}").text


def test_decisions_follow_the_rules(bo):
    number = submit(bo)
    reject_without_note = act(bo, number, "reject")
    assert reject_without_note.status_code == 422
    assert reject_without_note.json()["error"] == "note_required"
    assert act(bo, number, "reject", "不符合申请条件").status_code == 303
    page = bo.get(f"/staff/applications/{number}").text
    assert "/actions/" not in page  # a rejected application offers no further decision
    assert bo.get(f"/api/v1/applications/progress/{number}").json()["note"] == "不符合申请条件"


def test_forms_refuse_cross_origin_and_missing_tokens(bo):
    number = submit(bo)
    path = f"/staff/applications/{number}/actions/accept"
    page = bo.get(f"/staff/applications/{number}").text
    token = csrf_of(page, path)
    evil = bo.post(path, data={"csrf": token}, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and evil.json()["error"] == "cross_origin_post"
    no_origin = bo.post(path, data={"csrf": token}, headers={})
    assert no_origin.status_code == 403
    wrong = bo.post(path, data={"csrf": "0" * 64}, headers=ORIGIN)
    assert wrong.json()["error"] == "csrf_token_invalid"
    # A token is bound to its form: the accept token does not approve.
    approve = bo.post(f"/staff/applications/{number}/actions/approve", data={"csrf": token},
                      headers=ORIGIN)
    assert approve.json()["error"] == "csrf_token_invalid"
    assert bo.get(f"/api/v1/applications/progress/{number}").json()["status"] == "submitted"


def test_a_staff_token_gates_the_pages(test_seed):
    with client(test_seed, staff_token="s3cret-token") as bo:
        first = bo.get("/staff", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/staff/login"
        assert bo.get("/staff/kiosks").status_code == 401
        login = bo.get("/staff/login")
        assert "staff token required" in login.text
        token = csrf_of(login.text, "/staff/login")
        bad = bo.post("/staff/login", data={"csrf": token, "token": "guess"}, headers=ORIGIN)
        assert bad.status_code == 401
        good = bo.post("/staff/login", data={"csrf": token, "token": "s3cret-token"},
                       headers=ORIGIN, follow_redirects=False)
        assert good.status_code == 303
        assert bo.get("/staff/kiosks").status_code == 200
