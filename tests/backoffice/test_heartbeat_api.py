"""Kiosk heartbeats on the server: latest per kiosk, flags for staff."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.backoffice.inprocess import CENTRE, client

NOW = dt.datetime(2030, 5, 17, 2, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


def beat(bo, kiosk: str, *, quarantined: int = 0, sent_at: dt.datetime | None = None,
         paper: str = "full", state: str = "online"):
    return bo.post(f"/api/v1/kiosks/{kiosk}/heartbeat", json={
        "centre_id": CENTRE, "software_version": "0.1.0",
        "sent_at": sent_at.isoformat() if sent_at else None,
        "devices": [{"device_id": "a4-printer", "device_class": "printer", "state": state,
                     "paper": paper}, {"device_id": "id-reader", "state": "online"}],
        "outbox": {"depth": 2, "quarantined": quarantined, "oldest_age_s": 12.5}})


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def bo(test_seed, clock):
    with client(test_seed, clock=clock, heartbeat_stale_after_s=60) as c:
        yield c


def kiosks(bo):
    return {k["kiosk_id"]: k for k in bo.get("/api/v1/kiosks").json()}


def test_latest_heartbeat_is_kept_and_flagged(bo, clock):
    assert beat(bo, "K-1", sent_at=NOW).status_code == 200
    assert kiosks(bo)["K-1"]["flags"] == []
    clock.now = NOW + dt.timedelta(seconds=10)
    beat(bo, "K-1", quarantined=1, paper="low", sent_at=clock.now)
    k1 = kiosks(bo)["K-1"]
    assert k1["heartbeats"] == 2
    assert k1["flags"] == ["quarantined", "paper_low"]
    assert k1["outbox"] == {"depth": 2, "quarantined": 1, "oldest_age_s": 12.5}


def test_an_older_snapshot_does_not_replace_a_newer_one(bo):
    beat(bo, "K-2", quarantined=3, sent_at=NOW)
    beat(bo, "K-2", quarantined=0, sent_at=NOW - dt.timedelta(minutes=1))
    assert kiosks(bo)["K-2"]["outbox"]["quarantined"] == 3


def test_a_silent_kiosk_turns_stale_and_faults_are_flagged(bo, clock):
    beat(bo, "K-3", state="hardwareError", paper="out")
    clock.now = NOW + dt.timedelta(seconds=61)
    assert kiosks(bo)["K-3"]["flags"] == ["stale", "device_fault", "paper_out"]
    page = bo.get("/staff/kiosks")
    assert "K-3" in page.text and "stale device_fault paper_out" in page.text


def test_heartbeat_errors(bo):
    unknown = bo.post("/api/v1/kiosks/K-9/heartbeat", json={
        "centre_id": "NOWHERE", "software_version": "1", "outbox": {"depth": 0, "quarantined": 0}})
    assert unknown.status_code == 404
    bad = bo.post("/api/v1/kiosks/K-9/heartbeat", json={
        "centre_id": CENTRE, "software_version": "1", "outbox": {"depth": -1, "quarantined": 0}})
    assert bad.status_code == 422
