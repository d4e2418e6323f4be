"""好差评 against the real back office over loopback: levels, the GB/T 39734 indicators from its
scheme, the idempotent send, and what happens while it cannot be reached."""

from __future__ import annotations

import uuid
from html import unescape

import httpx
import pytest

from flows.ports import (
    BackOfficeUnavailable,
    Rating,
    RatingLevel,
)
from flows.rating import (
    COMMENT_TOO_LONG,
    INDICATORS_REQUIRED,
    UNKNOWN_INDICATOR,
    RateAction,
    RateProblem,
    RateStep,
    RatingFlow,
    RatingIndicator,
    RatingScheme,
    RatingSettings,
    RatingSubject,
)
from kiosk.client import HttpBackOffice
from tests.fakes import ListAudit


class SchemeOverHttp:
    """``RatingSchemeSource`` as the kiosk client should offer it (GET /ratings/scheme)."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.down = False

    def rating_scheme(self) -> RatingScheme:
        if self.down:
            raise BackOfficeUnavailable("rating scheme: down")
        data = httpx.get(f"{self.api}/ratings/scheme", timeout=5, trust_env=False).json()
        return RatingScheme(
            data["standard"], tuple((RatingLevel(x["level"]), x["name"]) for x in data["levels"]),
            tuple(RatingIndicator(i["code"], i["group"], i["label"]) for i in data["indicators"]),
            data["max_comment_chars"])


class Desk:
    """The real client; the network fails on cue, before the request or after it (the rating
    arrived, the answer did not)."""

    def __init__(self, client: HttpBackOffice) -> None:
        self.client = client
        self.down = 0
        self.lose_answers = 0
        self.keys: list[str] = []
        self.ids: list[int] = []

    def rate(self, rating: Rating, *, idempotency_key: str) -> int:
        self.keys.append(idempotency_key)
        if self.down:
            self.down -= 1
            raise BackOfficeUnavailable("rating: down")
        rating_id = self.client.rate(rating, idempotency_key=idempotency_key)
        self.ids.append(rating_id)
        if self.lose_answers:
            self.lose_answers -= 1
            raise BackOfficeUnavailable("rating: answer lost")
        return rating_id


@pytest.fixture
def parts(backoffice_server):
    client = HttpBackOffice(backoffice_server.url, timeout_s=3)
    yield {"desk": Desk(client), "scheme": SchemeOverHttp(backoffice_server.api),
           "audit": ListAudit(), "server": backoffice_server}
    client.close()


def make_flow(parts, subject: RatingSubject) -> RatingFlow:
    server = parts["server"]
    flow = RatingFlow(desk=parts["desk"], scheme=parts["scheme"], audit=parts["audit"],
                      settings=RatingSettings("ZZ-T-RATE", server.centre_id), subject=subject)
    flow.start()
    return flow


def staff_rows(parts, marker: str) -> list[str]:
    """The rows of the staff ratings page that hold ``marker`` (a unique comment)."""
    page = httpx.get(f"{parts['server'].url}/staff/ratings", timeout=5, trust_env=False).text
    return [unescape(row) for row in page.split("<tr>") if marker in row]


def comment() -> str:
    return f"引导很清楚-{uuid.uuid4().hex[:8]}"


def test_a_good_rating_of_a_transaction_is_sent_once(parts):
    flow = make_flow(parts, RatingSubject("sess-r1", tracking_number="ZZ-RATE-0001",
                                          service_item_code="HJ001", service_name="户籍证明开具"))
    assert flow.view.step is RateStep.CHOOSE_LEVEL
    flow.choose_level(RatingLevel.VERY_SATISFIED)
    view = flow.view
    assert (view.step, view.indicators, view.indicators_required) == (RateStep.DETAILS, (),
                                                                      False)
    text = comment()
    flow.submit(("wait_too_long",), comment=f"  {text}  ")  # indicators are for 差评 only
    assert flow.view.step is RateStep.SENT
    [row] = staff_rows(parts, text)
    assert "非常满意" in row and "ZZ-RATE-0001" in row and "等候时间长" not in row
    [(kind, session, detail)] = [r for r in parts["audit"].rows if r[0] == "rating.sent"]
    assert session == "sess-r1"
    assert detail == {"level": 5, "indicators": [], "tracking_number": "ZZ-RATE-0001",
                      "has_comment": True, "rating_id": parts["desk"].ids[0]}
    assert text not in repr(parts["audit"].rows)  # the comment never reaches the audit log


def test_a_bad_rating_needs_an_indicator_of_the_scheme(parts):
    flow = make_flow(parts, RatingSubject("sess-r2"))
    flow.choose_level(RatingLevel.DISSATISFIED)
    view = flow.view
    assert view.indicators_required
    codes = {i.code: i for i in view.indicators}
    assert codes["wait_too_long"].group == "服务效率" and "attitude_poor" in codes
    text = comment()
    flow.submit((), comment=text)
    assert (flow.view.step, flow.view.detail) == (RateStep.DETAILS, INDICATORS_REQUIRED)
    flow.submit(("wait_too_long", "made_up"), comment=text)
    assert flow.view.detail == UNKNOWN_INDICATOR
    assert parts["desk"].keys == []  # nothing was sent
    flow.submit(("wait_too_long", "attitude_poor", "wait_too_long"), comment=text)
    assert flow.view.step is RateStep.SENT
    [row] = staff_rows(parts, text)
    assert "不满意" in row and "非常不满意" not in row and "sess-r2" in row
    assert "等候时间长、服务态度差" in row


def test_a_lost_answer_is_retried_with_the_same_key_and_counted_once(parts):
    parts["desk"].lose_answers = 1
    flow = make_flow(parts, RatingSubject("sess-r3"))
    flow.choose_level(RatingLevel.SATISFIED)
    text = comment()
    flow.submit(comment=text)
    view = flow.view
    assert (view.step, view.problem) == (RateStep.FAILED, RateProblem.BACKOFFICE_UNAVAILABLE)
    assert view.actions == (RateAction.RETRY, RateAction.HOME)
    flow.retry()
    assert flow.view.step is RateStep.SENT
    desk = parts["desk"]
    assert len(desk.keys) == 2 and len(set(desk.keys)) == 1
    assert desk.ids[0] == desk.ids[1]
    assert len(staff_rows(parts, text)) == 1


def test_still_down_after_a_retry_the_rating_is_dropped_honestly(parts):
    parts["desk"].down = 2
    flow = make_flow(parts, RatingSubject("sess-r4", tracking_number="ZZ-RATE-0004"))
    flow.choose_level(RatingLevel.VERY_DISSATISFIED)
    text = comment()
    flow.submit(("shirking",), comment=text)
    assert flow.view.problem is RateProblem.BACKOFFICE_UNAVAILABLE
    flow.retry()
    view = flow.view
    assert (view.step, view.problem, view.actions) == (RateStep.FAILED, RateProblem.NOT_SENT,
                                                       (RateAction.HOME,))
    flow.retry()  # nothing left to send
    assert len(parts["desk"].keys) == 2
    [detail] = [d for k, _, d in parts["audit"].rows if k == "rating.undelivered"]
    assert detail == {"level": 1, "indicators": ["shirking"], "tracking_number": "ZZ-RATE-0004",
                      "has_comment": True}
    assert text not in repr(parts["audit"].rows) and flow._rating is None
    assert staff_rows(parts, text) == []


def test_the_scheme_unavailable_can_be_retried(parts):
    parts["scheme"].down = True
    flow = make_flow(parts, RatingSubject("sess-r5"))
    flow.choose_level(RatingLevel.DISSATISFIED)
    assert flow.view.problem is RateProblem.SCHEME_UNAVAILABLE
    parts["scheme"].down = False
    flow.retry()
    assert flow.view.step is RateStep.DETAILS and flow.view.indicators


def test_a_comment_over_the_limit_is_refused_before_sending(parts):
    flow = make_flow(parts, RatingSubject("sess-r6"))
    flow.choose_level(RatingLevel.DISSATISFIED)
    flow.submit(("other",), comment="长" * (flow.view.max_comment_chars + 1))
    assert (flow.view.step, flow.view.detail) == (RateStep.DETAILS, COMMENT_TOO_LONG)
    assert parts["desk"].keys == []
    flow.back()
    assert flow.view.step is RateStep.CHOOSE_LEVEL


def test_changing_the_rating_after_a_failure_is_a_new_write(parts):
    parts["desk"].down = 1
    flow = make_flow(parts, RatingSubject("sess-r7"))
    flow.choose_level(RatingLevel.SATISFIED)
    flow.submit()
    assert flow.view.problem is RateProblem.BACKOFFICE_UNAVAILABLE
    flow.back()
    flow.choose_level(RatingLevel.BASICALLY_SATISFIED)
    text = comment()
    flow.submit(comment=text)
    assert flow.view.step is RateStep.SENT
    assert len(set(parts["desk"].keys)) == 2  # a reused key with another body is refused
    [row] = staff_rows(parts, text)
    assert "基本满意" in row


def test_wipe_drops_the_comment(parts):
    parts["desk"].down = 1
    flow = make_flow(parts, RatingSubject("sess-r8"))
    flow.choose_level(RatingLevel.SATISFIED)
    flow.submit(comment=comment())
    flow.wipe()
    assert flow.view.step is RateStep.CANCELLED and flow._rating is None
