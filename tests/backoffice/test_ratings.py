"""好差评: levels, indicators, subject, idempotency."""

from __future__ import annotations

import pytest

from tests.backoffice.inprocess import CENTRE, client

BASE = {"kiosk_id": "K1", "centre_id": CENTRE}


@pytest.fixture
def bo(test_seed):
    with client(test_seed) as c:
        yield c


def rate(bo, key: str, **fields):
    return bo.post("/api/v1/ratings", json={**BASE, **fields}, headers={"Idempotency-Key": key})


def test_scheme_lists_five_levels_and_indicators(bo):
    scheme = bo.get("/api/v1/ratings/scheme").json()
    assert [(lv["level"], lv["name"]) for lv in scheme["levels"]] == [
        (5, "非常满意"), (4, "满意"), (3, "基本满意"), (2, "不满意"), (1, "非常不满意")]
    labels = {i["label"] for i in scheme["indicators"]}
    assert {"办事流程繁琐", "等候时间长", "服务态度差"} <= labels
    assert scheme["standard"] == "GB/T 39734-2020"


def test_a_good_rating_and_its_replay(bo):
    first = rate(bo, "rating-key-1", level=5, tracking_number="T-APP-NEW")
    assert first.status_code == 201
    again = rate(bo, "rating-key-1", level=5, tracking_number="T-APP-NEW")
    assert again.json()["id"] == first.json()["id"]
    changed = rate(bo, "rating-key-1", level=4, tracking_number="T-APP-NEW")
    assert changed.json()["error"] == "idempotency_key_reused"


@pytest.mark.parametrize(("fields", "error"), [
    ({"level": 2, "session_id": "s"}, "indicators_required"),
    ({"level": 4, "session_id": "s", "indicators": ["wait_too_long"]},
     "indicators_not_allowed"),
    ({"level": 5}, "rating_subject_missing"),
    ({"level": 6, "session_id": "s"}, "invalid_request"),
    ({"level": 1, "session_id": "s", "indicators": ["made_up"]}, "invalid_request"),
    ({"level": 3, "session_id": "s", "comment": "长" * 201}, "invalid_request"),
])
def test_bad_ratings_are_refused(bo, fields, error):
    answer = rate(bo, f"rating-bad-{error}", **fields)
    assert answer.status_code == 422 and answer.json()["error"] == error


def test_a_bad_rating_with_indicators_is_stored_and_shown(bo):
    assert rate(bo, "rating-key-bad", level=1, session_id="sess-9",
                indicators=["process_complex", "wait_too_long"],
                comment="排队太久").status_code == 201
    page = bo.get("/staff/ratings")
    assert page.status_code == 200
    assert "非常不满意" in page.text and "办事流程繁琐、等候时间长" in page.text
    assert "排队太久" in page.text
