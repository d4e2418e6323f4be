"""The service catalogue: the demo seed's unified fields, ETag revalidation, one item."""

from __future__ import annotations

import datetime as dt

import pytest

from backoffice.db import SessionFactory, init_schema, make_engine
from backoffice.seed import SeedError, load_seed, read_seed_file
from tests.backoffice.inprocess import client
from tests.backoffice.test_api import DEMO_SEED

DEMO_CENTRE = "530102-01"


@pytest.fixture(scope="module")
def demo():
    with client(read_seed_file(DEMO_SEED)) as c:
        yield c


def test_demo_catalogue_has_a_dozen_items_with_the_five_fields(demo):
    answer = demo.get("/api/v1/service-items", params={"centre_id": DEMO_CENTRE})
    assert answer.status_code == 200
    items = {i["code"]: i for i in answer.json()["items"]}
    assert len(items) >= 12
    names = {i["name"] for i in items.values()}
    assert {"城乡居民基本养老保险参保登记", "最低生活保障申请", "临时救助申请", "生育登记",
            "居住证申领", "户籍证明开具"} <= names
    for item in items.values():
        assert item["name"] and item["item_type"] and item["legal_basis"] and item["conditions"]
        assert item["materials"], item["code"]
        assert item["basic_code"][:2] in {"XK", "JF", "QR", "QT", "GG"}
        assert item["promised_days"] is not None
    dibao = items["MZ001"]
    assert dibao["item_type"] == "行政给付"
    requirement = {m["code"]: m["requirement"] for m in dibao["materials"]}
    assert requirement["ID"] == "required" and requirement["MARRIAGE"] == "deferrable"
    assert requirement["DISABILITY"] == "optional"
    assert {m["paper"] for m in dibao["materials"]} == {"a4", "id1"}


def test_etag_revalidation_answers_304_until_the_catalogue_changes(demo):
    first = demo.get("/api/v1/service-items", params={"centre_id": DEMO_CENTRE})
    etag = first.headers["etag"]
    assert etag == f'"{first.json()["version"]}"'
    again = demo.get("/api/v1/service-items", params={"centre_id": DEMO_CENTRE},
                     headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    weak = demo.get("/api/v1/service-items", params={"centre_id": DEMO_CENTRE},
                    headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    stale = demo.get("/api/v1/service-items", params={"centre_id": DEMO_CENTRE},
                     headers={"If-None-Match": '"old-version"'})
    assert stale.status_code == 200 and stale.json()["items"]
    other_centre = demo.get("/api/v1/service-items", params={"centre_id": "530111-01"})
    assert other_centre.json()["version"] != first.json()["version"]


def test_version_changes_when_an_item_changes(test_seed):
    with client(test_seed) as c:
        before = c.get("/api/v1/service-items").json()["version"]
    test_seed["centres"][0]["service_items"][0]["fees"] = "工本费20元"
    with client(test_seed) as c:
        after = c.get("/api/v1/service-items").json()["version"]
    assert before != after


def test_one_item_and_its_errors(demo):
    item = demo.get("/api/v1/service-items/HJ002", params={"centre_id": DEMO_CENTRE})
    assert item.status_code == 200
    assert item.json()["name"] == "居住证申领"
    assert "《居住证暂行条例》" in item.json()["legal_basis"][0]
    missing = demo.get("/api/v1/service-items/NOPE", params={"centre_id": DEMO_CENTRE})
    assert missing.status_code == 404 and missing.json()["error"] == "service_item_not_found"
    no_centre = demo.get("/api/v1/service-items/HJ002", params={"centre_id": "NOWHERE"})
    assert no_centre.json()["error"] == "centre_not_found"
    assert demo.get("/api/v1/service-items/HJ002").status_code == 422


def test_seed_rejects_a_duplicate_material_code(test_seed):
    material = {"code": "ID", "name": "居民身份证", "requirement": "required"}
    test_seed["centres"][0]["service_items"][0]["materials"] = [material, material]
    engine = make_engine("sqlite://")
    init_schema(engine)
    with SessionFactory(engine).session() as session, pytest.raises(SeedError, match="twice"):
        load_seed(session, test_seed, dt.date(2030, 1, 1))


def test_seed_rejects_an_unknown_requirement(test_seed):
    test_seed["centres"][0]["service_items"][0]["materials"] = [
        {"code": "ID", "name": "居民身份证", "requirement": "maybe"}]
    engine = make_engine("sqlite://")
    init_schema(engine)
    with SessionFactory(engine).session() as session, pytest.raises(SeedError,
                                                                    match="requirement"):
        load_seed(session, test_seed, dt.date(2030, 1, 1))
