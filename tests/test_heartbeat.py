"""The kiosk's HeartbeatSender against the real back office on loopback."""

from __future__ import annotations

import time
import uuid

import httpx

from kiosk.client import NO_RETRY, DeviceReport, HeartbeatReport, HttpBackOffice
from kiosk.heartbeat import HeartbeatSender
from kiosk.launcher import free_port


def _kiosk_state(backoffice_server, kiosk_id: str) -> dict | None:
    listing = httpx.get(f"{backoffice_server.api}/kiosks", trust_env=False).json()
    return next((k for k in listing if k["kiosk_id"] == kiosk_id), None)


def _report(centre: str, quarantined: int = 0) -> HeartbeatReport:
    return HeartbeatReport(
        centre_id=centre, software_version="0.1.0-test",
        devices=(DeviceReport("receipt-printer", "online", "printer", "low"),
                 DeviceReport("id-reader", "noDevice", "idcard")),
        outbox_depth=4, outbox_quarantined=quarantined, outbox_oldest_age_s=30.0)


def test_beat_now_reaches_the_server_and_staff_see_the_flags(backoffice_server):
    kiosk_id = f"K-HB-{uuid.uuid4().hex[:8]}"
    with HttpBackOffice(backoffice_server.url, timeout_s=5) as client:
        sender = HeartbeatSender(client, kiosk_id,
                                 lambda: _report(backoffice_server.centre_id, quarantined=2))
        assert sender.beat_now() is True
    state = _kiosk_state(backoffice_server, kiosk_id)
    assert state is not None
    assert state["software_version"] == "0.1.0-test"
    assert state["outbox"] == {"depth": 4, "quarantined": 2, "oldest_age_s": 30.0}
    assert {"quarantined", "device_fault", "paper_low"} <= set(state["flags"])
    assert state["sent_at"] is not None  # filled in by the sender
    assert sender.sent == 1 and sender.last_acknowledged is not None


def test_the_thread_keeps_beating_until_stopped(backoffice_server):
    kiosk_id = f"K-HB-{uuid.uuid4().hex[:8]}"
    with HttpBackOffice(backoffice_server.url, timeout_s=5) as client:
        sender = HeartbeatSender(client, kiosk_id, lambda: _report(backoffice_server.centre_id),
                                 interval_s=0.05)
        with sender:
            deadline = time.monotonic() + 10
            while sender.sent < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert not sender.running
    assert sender.sent >= 3
    assert _kiosk_state(backoffice_server, kiosk_id)["heartbeats"] == sender.sent


def test_failures_never_reach_the_caller(backoffice_server):
    def broken() -> HeartbeatReport:
        raise RuntimeError("device layer exploded")

    with HttpBackOffice(backoffice_server.url, timeout_s=5) as client:
        sender = HeartbeatSender(client, "K-HB-BROKEN", broken)
        assert sender.beat_now() is False
        assert sender.failed == 1 and "RuntimeError" in (sender.last_error or "")
        refused = HeartbeatSender(client, "K-HB-REFUSED", lambda: _report("NO-SUCH-CENTRE"))
        assert refused.beat_now() is False
        assert "backoffice_rejected" in (refused.last_error or "")
    with HttpBackOffice(f"http://127.0.0.1:{free_port()}", timeout_s=0.5,
                        retry=NO_RETRY) as down:
        offline = HeartbeatSender(down, "K-HB-DOWN", lambda: _report("TEST-01"))
        assert offline.beat_now() is False
        assert "backoffice_unavailable" in (offline.last_error or "")


def test_the_kiosk_beats_from_start_up_with_its_devices_and_outbox(backoffice_server, tmp_path):
    """The composition root starts the sender: staff see a kiosk as soon as it is up."""
    from kiosk.app import build_kiosk
    from kiosk.config import load_config

    kiosk_id = f"ZZ-HB-{uuid.uuid4().hex[:6].upper()}"
    path = tmp_path / "kiosk.toml"
    path.write_text(f"""
[kiosk]
id = "{kiosk_id}"
centre_id = "{backoffice_server.centre_id}"
data_dir = "{tmp_path / 'data'}"
[backoffice]
url = "{backoffice_server.url}"
[devices.receipt_printer]
driver = "sim"
output_dir = "{tmp_path / 'prints'}"
""", encoding="utf-8")
    kiosk = build_kiosk(load_config(path))
    try:
        deadline = time.monotonic() + 10
        while (state := _kiosk_state(backoffice_server, kiosk_id)) is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert state is not None
        assert state["outbox"]["depth"] == 0
        assert any(d["device_id"] == "receipt_printer" for d in state["devices"])
    finally:
        kiosk.close()
