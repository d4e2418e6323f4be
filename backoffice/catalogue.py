"""The service catalogue (办事指南): ``GET /api/v1/service-items`` and one item by its code.

The list carries a ``version`` (a digest of its content) that is also its ETag: a kiosk that
cached the catalogue sends ``If-None-Match`` and gets an empty 304 while nothing changed, so
revalidating every few minutes costs a few hundred bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice import API_PREFIX, models
from backoffice.app import ApiError, SessionDep, _centre_or_404, _errors
from backoffice.schemas import (
    CODE_PATTERN,
    ID_PATTERN,
    ItemMaterial,
    ItemType,
    KioskService,
    ServiceCatalogue,
    ServiceItemDetail,
)

router = APIRouter(prefix=API_PREFIX, tags=["catalogue"])

CentreQuery = Annotated[str | None, Query(pattern=ID_PATTERN,
                                          description="Only this centre's items.")]


def item_detail(item: models.ServiceItem) -> ServiceItemDetail:
    return ServiceItemDetail(
        code=item.code, name=item.name, category_code=item.category_code,
        department=item.department, centre_id=item.centre_id, basic_code=item.basic_code,
        item_type=ItemType(item.item_type),
        kiosk_services=[KioskService(s) for s in item.kiosk_services or []],
        legal_basis=list(item.legal_basis or []), conditions=list(item.conditions or []),
        materials=[ItemMaterial.model_validate(m) for m in item.materials or []],
        promised_days=item.promised_days, statutory_days=item.statutory_days, fees=item.fees,
        co_departments=list(item.co_departments or []), result_name=item.result_name)


def catalogue(session: Session, centre_id: str | None) -> ServiceCatalogue:
    query = select(models.ServiceItem)
    if centre_id is not None:
        _centre_or_404(session, centre_id)
        query = query.where(models.ServiceItem.centre_id == centre_id)
    items = [item_detail(i) for i in session.scalars(
        query.order_by(models.ServiceItem.centre_id, models.ServiceItem.code))]
    canonical = json.dumps([i.model_dump(mode="json") for i in items], sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"))
    version = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
    return ServiceCatalogue(version=version, items=items)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    # RFC 9110 13.1.2: weak comparison, a list of tags or "*".
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/service-items", response_model=ServiceCatalogue,
    summary="The service catalogue (事项), with a version for cheap revalidation",
    responses={304: {"description": "Not modified: the If-None-Match tag is current."},
               **_errors((404, "centre_not_found"))})
def service_items(session: SessionDep, centre_id: CentreQuery = None,
                  if_none_match: Annotated[str | None, Header(
                      alias="If-None-Match",
                      description="The ETag of the copy the kiosk holds.")] = None,
                  ) -> Response:
    answer = catalogue(session, centre_id)
    etag = f'"{answer.version}"'
    # no-cache: keep it, but ask every time (the 304 makes asking cheap).
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(answer.model_dump(mode="json"), headers=headers)


@router.get(
    "/service-items/{code}", response_model=ServiceItemDetail,
    summary="One 事项 of a centre with its 办事指南 fields",
    responses=_errors((404, "service_item_not_found, centre_not_found")))
def service_item(code: Annotated[str, Path(pattern=CODE_PATTERN)],
                 centre_id: Annotated[str, Query(pattern=ID_PATTERN,
                                                 description="The centre offering it.")],
                 session: SessionDep) -> ServiceItemDetail:
    _centre_or_404(session, centre_id)
    item = session.scalar(select(models.ServiceItem).where(
        models.ServiceItem.centre_id == centre_id, models.ServiceItem.code == code))
    if item is None:
        raise ApiError(404, "service_item_not_found", "This centre offers no item with this code.")
    return item_detail(item)
