"""好差评: ``POST /api/v1/ratings`` and the indicator list, after GB/T 39734-2020.

Levels are the standard's five (非常满意 5 … 非常不满意 1). A 差评 (不满意 or 非常不满意) must
name at least one indicator; a good rating names none. The indicators are grouped under the
first-level indicators the standard uses for on-site (现场) evaluation — 服务效率, 服务水平,
服务态度 — plus 办事便捷度, which it uses for self-service and online channels; the second-level
wording is ours and should be checked against the standard's 附录A before production.

A rating is tied to a 办件编号 (or the kiosk's local tracking number, which may not have reached
the back office yet, so it is not checked) or to a kiosk session id.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field

from backoffice import API_PREFIX, models
from backoffice.app import (
    ApiError,
    IdempotencyKey,
    SessionDep,
    SettingsDep,
    _centre_or_404,
    _errors,
    _idempotent,
)
from backoffice.schemas import CODE_PATTERN, ApiModel, CentreId, KioskId

router = APIRouter(prefix=API_PREFIX, tags=["ratings"])

MAX_COMMENT_CHARS = 200
BAD_LEVELS = frozenset({1, 2})


class RatingLevel(enum.IntEnum):
    very_satisfied = 5  # 非常满意
    satisfied = 4  # 满意
    basically_satisfied = 3  # 基本满意
    dissatisfied = 2  # 不满意
    very_dissatisfied = 1  # 非常不满意


LEVEL_NAMES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}


class RatingIndicator(enum.StrEnum):
    # 服务效率
    wait_too_long = "wait_too_long"
    handling_slow = "handling_slow"
    repeat_visits = "repeat_visits"
    # 服务水平
    process_complex = "process_complex"
    materials_unclear = "materials_unclear"
    guide_inaccurate = "guide_inaccurate"
    staff_unskilled = "staff_unskilled"
    # 服务态度
    attitude_poor = "attitude_poor"
    shirking = "shirking"
    # 办事便捷度
    kiosk_hard_to_use = "kiosk_hard_to_use"
    facilities_poor = "facilities_poor"
    other = "other"


# code -> (first-level indicator, label shown to the citizen)
INDICATORS: dict[RatingIndicator, tuple[str, str]] = {
    RatingIndicator.wait_too_long: ("服务效率", "等候时间长"),
    RatingIndicator.handling_slow: ("服务效率", "办理时间长、超过承诺时限"),
    RatingIndicator.repeat_visits: ("服务效率", "多次跑动"),
    RatingIndicator.process_complex: ("服务水平", "办事流程繁琐"),
    RatingIndicator.materials_unclear: ("服务水平", "材料要求不明确、一次性告知不到位"),
    RatingIndicator.guide_inaccurate: ("服务水平", "办事指南不准确"),
    RatingIndicator.staff_unskilled: ("服务水平", "业务不熟练"),
    RatingIndicator.attitude_poor: ("服务态度", "服务态度差"),
    RatingIndicator.shirking: ("服务态度", "推诿扯皮"),
    RatingIndicator.kiosk_hard_to_use: ("办事便捷度", "自助设备不好用"),
    RatingIndicator.facilities_poor: ("办事便捷度", "场所设施不便利"),
    RatingIndicator.other: ("其他", "其他"),
}


class RatingCreate(ApiModel):
    """One 好差评 of one transaction."""

    level: RatingLevel = Field(description="5 非常满意, 4 满意, 3 基本满意, 2 不满意, "
                                           "1 非常不满意.")
    indicators: list[RatingIndicator] = Field(
        default_factory=list, max_length=len(RatingIndicator),
        description="Required (at least one) for levels 1-2, empty for 3-5.")
    comment: str = Field(default="", max_length=MAX_COMMENT_CHARS,
                         description="Optional free text; may hold personal data, never logged.")
    tracking_number: Annotated[str, Field(pattern=CODE_PATTERN)] | None = Field(
        default=None, description="办件编号 or local tracking number of the rated transaction.")
    session_id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="The kiosk session rated, when there is no 办件.")
    service_item_code: Annotated[str, Field(pattern=CODE_PATTERN)] | None = None
    kiosk_id: KioskId
    centre_id: CentreId


class RatingCreated(ApiModel):
    id: int
    created_at: AwareDatetime


class IndicatorInfo(ApiModel):
    code: RatingIndicator
    group: str = Field(description="First-level indicator (一级指标).")
    label: str


class LevelInfo(ApiModel):
    level: RatingLevel
    name: str


class RatingScheme(ApiModel):
    """What the kiosk's rating screen offers."""

    standard: str
    levels: list[LevelInfo]
    indicators: list[IndicatorInfo]
    max_comment_chars: int


@router.get("/ratings/scheme", response_model=RatingScheme,
            summary="The five levels and the 差评 indicators")
def rating_scheme() -> RatingScheme:
    return RatingScheme(
        standard="GB/T 39734-2020",
        levels=[LevelInfo(level=RatingLevel(n), name=LEVEL_NAMES[n]) for n in (5, 4, 3, 2, 1)],
        indicators=[IndicatorInfo(code=code, group=group, label=label)
                    for code, (group, label) in INDICATORS.items()],
        max_comment_chars=MAX_COMMENT_CHARS)


@router.post(
    "/ratings", status_code=201, response_model=RatingCreated,
    summary="Rate a transaction (好差评)",
    responses=_errors(
        (400, "idempotency_key_required / malformed_idempotency_key"),
        (404, "centre_not_found"),
        (422, "rating_subject_missing, indicators_required, indicators_not_allowed, "
              "invalid_request, idempotency_key_reused")))
def create_rating(body: RatingCreate, idempotency_key: IdempotencyKey, session: SessionDep,
                  settings: SettingsDep) -> JSONResponse:
    def produce() -> tuple[int, dict[str, Any]]:
        if body.tracking_number is None and body.session_id is None:
            raise ApiError(422, "rating_subject_missing",
                           "A rating names a tracking_number or a session_id.")
        if body.level in BAD_LEVELS and not body.indicators:
            raise ApiError(422, "indicators_required",
                           "A 差评 (level 1 or 2) names at least one indicator.")
        if body.level not in BAD_LEVELS and body.indicators:
            raise ApiError(422, "indicators_not_allowed",
                           "Indicators are for 差评 (levels 1 and 2) only.")
        _centre_or_404(session, body.centre_id)
        now = settings.now()
        row = models.Rating(
            level=int(body.level), indicators=list(dict.fromkeys(i.value for i in body.indicators)),
            comment=body.comment.strip(), tracking_number=body.tracking_number,
            session_id=body.session_id, kiosk_id=body.kiosk_id, centre_id=body.centre_id,
            service_item_code=body.service_item_code, created_at=now)
        session.add(row)
        session.flush()
        return 201, RatingCreated(id=row.id, created_at=now).model_dump(mode="json")

    return _idempotent(session, settings, "rating", idempotency_key,
                       body.model_dump(mode="json"), produce)
