"""好差评 rating, after GB/T 39734-2020: five levels, the 差评 indicators, an optional comment,
tied to one transaction (its 办件编号, else the kiosk session) and sent with an idempotency key.

Levels 1-2 (不满意, 非常不满意) must name at least one indicator and levels 3-5 none, as the back
office enforces; the indicators come from its scheme (``GET /ratings/scheme``), fetched when a
citizen first picks a bad level. The comment may hold personal data: it goes to the back office
and nowhere else (never to the audit log, never to a log line).

When the back office cannot be reached: the client already retries within its budget; the
citizen may try once more (same key, so a rating that did arrive is not counted twice); after
that the flow says honestly that the rating was not sent and drops it. It is not queued: the
outbox is for applications, a rating is worth less than the personal data a stored comment
would keep on disk, and the citizen can rate through the other channels (12345, 政务服务网).
What is kept is the level and the indicators in the audit log (``rating.undelivered``), so a
bad rating given during an outage is not lost to staff.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Protocol

from flows.base import Flow
from flows.ports import (
    AuditSink,
    BackOfficeError,
    BackOfficeUnavailable,
    Rating,
    RatingDesk,
    RatingLevel,
)

BAD_LEVELS = frozenset({RatingLevel.DISSATISFIED, RatingLevel.VERY_DISSATISFIED})
DEFAULT_MAX_COMMENT_CHARS = 200


@dataclass(frozen=True)
class RatingIndicator:
    """A 差评 indicator: ``group`` is the standard's first-level indicator (服务效率 ...)."""

    code: str
    group: str
    label: str


@dataclass(frozen=True)
class RatingScheme:
    standard: str  # "GB/T 39734-2020"
    levels: tuple[tuple[RatingLevel, str], ...]  # (level, 非常满意 ...), best first
    indicators: tuple[RatingIndicator, ...]
    max_comment_chars: int = DEFAULT_MAX_COMMENT_CHARS


class RatingSchemeSource(Protocol):
    """Where the scheme comes from: the back office (``GET /api/v1/ratings/scheme``)."""

    def rating_scheme(self) -> RatingScheme: ...


@dataclass(frozen=True)
class RatingSubject:
    """What is rated: a transaction's 办件编号 (or the kiosk's local tracking number), else the
    session (the visit). ``service_name`` is for the screen ("您对『…』的办理是否满意")."""

    session_id: str
    tracking_number: str | None = None
    service_item_code: str | None = None
    service_name: str = ""


class RateStep(enum.StrEnum):
    CHOOSE_LEVEL = "choose_level"
    DETAILS = "details"  # the indicators (levels 1-2) and the optional comment
    SENDING = "sending"
    SENT = "sent"  # 感谢您的评价
    FAILED = "failed"
    CANCELLED = "cancelled"


class RateProblem(enum.StrEnum):
    SCHEME_UNAVAILABLE = "scheme_unavailable"  # the indicators could not be fetched
    BACKOFFICE_UNAVAILABLE = "backoffice_unavailable"  # try once more
    NOT_SENT = "not_sent"  # tried again, still down: the rating is dropped
    REJECTED = "rejected"  # the back office refused it (a bug, or an unknown centre)


class RateAction(enum.StrEnum):
    RETRY = "retry"
    BACK = "back"  # choose another level
    HOME = "home"


# DETAILS: why ``submit`` did not send (the screen keeps the citizen's input).
INDICATORS_REQUIRED = "indicators_required"
UNKNOWN_INDICATOR = "unknown_indicator"
COMMENT_TOO_LONG = "comment_too_long"

_ACTIONS: dict[RateProblem, tuple[RateAction, ...]] = {
    RateProblem.SCHEME_UNAVAILABLE: (RateAction.RETRY, RateAction.BACK, RateAction.HOME),
    RateProblem.BACKOFFICE_UNAVAILABLE: (RateAction.RETRY, RateAction.HOME),
    RateProblem.NOT_SENT: (RateAction.HOME,),
    RateProblem.REJECTED: (RateAction.HOME,),
}


@dataclass(frozen=True)
class RatingView:
    step: RateStep
    subject: RatingSubject
    level: RatingLevel | None = None
    indicators: tuple[RatingIndicator, ...] = ()  # DETAILS: what may be chosen (1-2 only)
    indicators_required: bool = False
    max_comment_chars: int = DEFAULT_MAX_COMMENT_CHARS
    problem: RateProblem | None = None
    detail: str = ""  # DETAILS: INDICATORS_REQUIRED ...; FAILED: the back office's error code
    actions: tuple[RateAction, ...] = ()


@dataclass(frozen=True)
class RatingSettings:
    kiosk_id: str
    centre_id: str
    # Citizen-visible retries after the client's own ones, before the rating is dropped.
    retries: int = 1


class RatingFlow(Flow[RatingView]):
    def __init__(self, *, desk: RatingDesk, scheme: RatingSchemeSource, audit: AuditSink,
                 settings: RatingSettings, subject: RatingSubject) -> None:
        super().__init__(RatingView(RateStep.CHOOSE_LEVEL, subject))
        self.desk = desk
        self.scheme_source = scheme
        self.audit = audit
        self.settings = settings
        self.subject = subject
        self._scheme: RatingScheme | None = None
        self._level: RatingLevel | None = None
        self._rating: Rating | None = None  # the comment: dropped by wipe
        self._key: str | None = None
        self._failures = 0

    def start(self) -> None:
        self._level = None
        self._show(RatingView(RateStep.CHOOSE_LEVEL, self.subject, actions=(RateAction.HOME,)))

    def choose_level(self, level: RatingLevel) -> None:
        """The face tapped. A bad level needs the scheme's indicators (fetched now, once)."""
        if self.view.step not in (RateStep.CHOOSE_LEVEL, RateStep.DETAILS, RateStep.FAILED):
            return
        self._level = RatingLevel(level)
        if self._level in BAD_LEVELS and self._scheme is None:
            try:
                self._scheme = self.scheme_source.rating_scheme()
            except BackOfficeError as error:
                self._fail(RateProblem.SCHEME_UNAVAILABLE, error.code)
                return
        self._details()

    def _details(self, detail: str = "") -> None:
        assert self._level is not None
        bad = self._level in BAD_LEVELS
        scheme = self._scheme
        self._show(RatingView(
            RateStep.DETAILS, self.subject, self._level,
            indicators=scheme.indicators if bad and scheme else (), indicators_required=bad,
            max_comment_chars=scheme.max_comment_chars if scheme else DEFAULT_MAX_COMMENT_CHARS,
            detail=detail, actions=(RateAction.BACK, RateAction.HOME)))

    def back(self) -> None:
        """Choose another level."""
        if self.view.step in (RateStep.DETAILS, RateStep.FAILED) and \
                self.view.problem is not RateProblem.NOT_SENT:
            self.start()

    def submit(self, indicators: tuple[str, ...] = (), comment: str = "") -> None:
        """Send the rating: the indicators' codes (levels 1-2) and the comment as typed."""
        if self.view.step is not RateStep.DETAILS or self._level is None:
            return
        bad = self._level in BAD_LEVELS
        chosen = tuple(dict.fromkeys(indicators)) if bad else ()
        comment = comment.strip()
        limit = self._scheme.max_comment_chars if self._scheme else DEFAULT_MAX_COMMENT_CHARS
        if bad and not chosen:
            self._details(INDICATORS_REQUIRED)
            return
        if self._scheme is not None and not set(chosen) <= {i.code for i in
                                                           self._scheme.indicators}:
            self._details(UNKNOWN_INDICATOR)
            return
        if len(comment) > limit:
            self._details(COMMENT_TOO_LONG)
            return
        rating = Rating(level=self._level, kiosk_id=self.settings.kiosk_id,
                        centre_id=self.settings.centre_id, indicators=chosen, comment=comment,
                        tracking_number=self.subject.tracking_number,
                        session_id=self.subject.session_id,
                        service_item_code=self.subject.service_item_code)
        if rating != self._rating:
            # Another rating than the one tried before: a new write, a new key (the back
            # office refuses a key reused with another body).
            self._rating, self._key, self._failures = rating, f"rating-{uuid.uuid4()}", 0
        self._send()

    def retry(self) -> None:
        if self.view.problem is RateProblem.BACKOFFICE_UNAVAILABLE and self._rating:
            self._send()
        elif self.view.problem is RateProblem.SCHEME_UNAVAILABLE and self._level:
            self.choose_level(self._level)

    def _send(self) -> None:
        rating, key = self._rating, self._key
        assert rating is not None and key is not None
        self._show(RatingView(RateStep.SENDING, self.subject, rating.level))
        try:
            rating_id = self.desk.rate(rating, idempotency_key=key)
        except BackOfficeUnavailable as error:
            self._failures += 1
            if self._failures <= self.settings.retries:
                self._fail(RateProblem.BACKOFFICE_UNAVAILABLE, error.code)
                return
            self.audit.record("rating.undelivered", session_id=self.subject.session_id,
                              detail=self._audit_detail(rating))
            self._drop()
            self._fail(RateProblem.NOT_SENT, error.code)
            return
        except BackOfficeError as error:
            self.audit.record("rating.rejected", session_id=self.subject.session_id,
                              detail={**self._audit_detail(rating), "error": error.code})
            self._drop()
            self._fail(RateProblem.REJECTED, error.code)
            return
        self.audit.record("rating.sent", session_id=self.subject.session_id,
                          detail={**self._audit_detail(rating), "rating_id": rating_id})
        self._drop()
        self._show(RatingView(RateStep.SENT, self.subject, rating.level,
                              actions=(RateAction.HOME,)))

    def _audit_detail(self, rating: Rating) -> dict[str, object]:
        # Never the comment.
        return {"level": int(rating.level), "indicators": list(rating.indicators),
                "tracking_number": rating.tracking_number or "",
                "has_comment": bool(rating.comment)}

    def _drop(self) -> None:
        self._rating = None

    def _fail(self, problem: RateProblem, detail: str = "") -> None:
        self._show(RatingView(RateStep.FAILED, self.subject, self._level, problem=problem,
                              detail=detail, actions=_ACTIONS[problem]))

    def wipe(self) -> None:
        """Session end: the comment is dropped."""
        self.cancel()
        self._rating = None
        self._key = None
        with self._lock:
            self._view = RatingView(RateStep.CANCELLED, self.subject)
