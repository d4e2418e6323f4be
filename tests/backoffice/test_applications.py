"""Progress history, results ready for pickup, confirmed collection, and the staff decisions
that lead there (in-process server on a private database: these tests change state)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from tests.backoffice.inprocess import APPLICANT_ID, client

WHO = {"id_number": APPLICANT_ID, "document_type": "residentId", "session_id": "s-1"}
COLLECT = {"id_number": APPLICANT_ID, "document_type": "residentId", "kiosk_id": "K1",
           "session_id": "s-1"}


@pytest.fixture
def bo(test_seed):
    with client(test_seed) as c:
        yield c


def test_progress_lists_the_history_without_personal_data(bo):
    answer = bo.get("/api/v1/applications/progress/T-APP-NEW")
    assert answer.status_code == 200
    body = answer.json()
    assert [s["step"] for s in body["history"]] == ["submitted", "ready"]
    assert body["history"][1]["note"] == "请到B区领取"
    assert body["history"][0]["department"] == "人社局"
    assert APPLICANT_ID not in answer.text and "测试申请人甲" not in answer.text


def test_ready_results_carry_a_pdf_and_only_for_that_document(bo):
    answer = bo.post("/api/v1/applications/ready-for-pickup", json=WHO)
    assert answer.status_code == 200
    [result] = answer.json()
    assert result["tracking_number"] == "T-APP-NEW"
    content = base64.b64decode(result["content_base64"])
    assert content.startswith(b"%PDF") and hashlib.sha256(content).hexdigest() == result["sha256"]
    # The CJK font is embedded (DESIGN.md), not referenced.
    assert re.search(rb"/FontFile2", content)
    passport = bo.post("/api/v1/applications/ready-for-pickup",
                       json={**WHO, "document_type": "passport"})
    assert passport.json() == []


def test_collection_is_idempotent_and_final(bo):
    url = "/api/v1/applications/T-APP-NEW/collected"
    first = bo.post(url, json=COLLECT, headers={"Idempotency-Key": "collect-key-1"})
    assert first.status_code == 200 and first.json()["status"] == "collected"
    replay = bo.post(url, json=COLLECT, headers={"Idempotency-Key": "collect-key-1"})
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    other_key = bo.post(url, json=COLLECT, headers={"Idempotency-Key": "collect-key-2"})
    assert other_key.status_code == 409 and other_key.json()["error"] == "already_collected"
    assert bo.post("/api/v1/applications/ready-for-pickup", json=WHO).json() == []
    progress = bo.get("/api/v1/applications/progress/T-APP-NEW").json()
    assert progress["status"] == "collected"
    assert [s["step"] for s in progress["history"]][-1] == "collected"


def test_collection_errors(bo):
    key = {"Idempotency-Key": "collect-key-x"}
    not_ready = bo.post("/api/v1/applications/T-APP-PASSPORT/collected",
                        json={**COLLECT, "document_type": "passport"}, headers=key)
    assert not_ready.status_code == 409 and not_ready.json()["error"] == "not_ready"
    stranger = bo.post("/api/v1/applications/T-APP-NEW/collected",
                       json={**COLLECT, "id_number": "110101199003070000"},
                       headers={"Idempotency-Key": "collect-key-y"})
    assert stranger.status_code == 404 and stranger.json()["error"] == "application_not_found"
    no_key = bo.post("/api/v1/applications/T-APP-NEW/collected", json=COLLECT)
    assert no_key.status_code == 400
