"""The Prometheus text file: parses as node_exporter will, says what the kiosk's state is, and
is replaced atomically. The offline figures come from a real outbox and a real audit log."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devices.contract import DeviceClass, DeviceState, DeviceStatus, PaperState
from kiosk import cli
from kiosk.metrics import (
    Activity,
    HealthSnapshot,
    MetricsWriter,
    activity_from_audit,
    outbox_counts_from_disk,
    render,
)
from kiosk.outbox import OutboxStore, create_key
from kiosk.services import AppState
from kiosk.storage.audit import AuditLog
from kiosk.storage.db import open_database
from tests.outbox.kiosk_driver import submission

STARTED = 1_900_000_000.0
NOW = STARTED + 3600.5


@dataclass(frozen=True)
class Counts:
    pending: int
    quarantined: int
    oldest_pending_age_s: float | None


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value}, parsed by prometheus_client's own parser."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(parsed: dict, name: str, **labels: str) -> float:
    return parsed[(name, frozenset(labels.items()))]


def live_snapshot() -> HealthSnapshot:
    return HealthSnapshot(
        kiosk_id="ZZ-530102-001", centre_id="530102-01", version="0.1.0",
        app_state=AppState.AVAILABLE, started_at=STARTED,
        devices={
            "receipt_printer": DeviceStatus("receipt_printer", DeviceClass.RECEIPT_PRINTER,
                                            DeviceState.ONLINE, paper=PaperState.LOW,
                                            queue_depth=2),
            "id_card": DeviceStatus("id_card", DeviceClass.ID_CARD_READER,
                                    DeviceState.HARDWARE_ERROR),
        },
        outbox=Counts(pending=3, quarantined=1, oldest_pending_age_s=125.0),
        activity=Activity(sessions={"completed": 7, "timeout": 2},
                          errors={("receipt_printer", "paperOut"): 4}),
        backoffice_up=False)


def test_every_figure_is_in_the_file() -> None:
    parsed = samples(render(live_snapshot(), clock=lambda: NOW))

    assert value(parsed, "zizhu_kiosk_info", kiosk_id="ZZ-530102-001", centre_id="530102-01",
                 version="0.1.0") == 1
    assert value(parsed, "zizhu_app_state", state="available") == 1
    assert {value(parsed, "zizhu_app_state", state=s.value) for s in AppState
            if s is not AppState.AVAILABLE} == {0}
    assert value(parsed, "zizhu_uptime_seconds") == 3600.5
    assert value(parsed, "zizhu_start_time_seconds") == STARTED
    # one series per device and state, 1 for the current one
    assert value(parsed, "zizhu_device_state", device="receipt_printer", state="online") == 1
    assert value(parsed, "zizhu_device_state", device="id_card", state="hardwareError") == 1
    assert value(parsed, "zizhu_device_state", device="id_card", state="online") == 0
    assert sum(v for (name, labels), v in parsed.items()
               if name == "zizhu_device_state" and ("device", "id_card") in labels) == 1
    assert len([k for k in parsed if k[0] == "zizhu_device_state"]) == 2 * len(DeviceState)
    assert value(parsed, "zizhu_printer_paper", device="receipt_printer", level="low") == 1
    assert value(parsed, "zizhu_printer_paper", device="receipt_printer", level="full") == 0
    assert not any(k[0] == "zizhu_printer_paper" and ("device", "id_card") in k[1]
                   for k in parsed)  # no paper in a card reader
    assert value(parsed, "zizhu_printer_queue_depth", device="receipt_printer") == 2
    assert value(parsed, "zizhu_outbox_pending") == 3
    assert value(parsed, "zizhu_outbox_quarantined") == 1
    assert value(parsed, "zizhu_outbox_oldest_pending_age_seconds") == 125
    assert value(parsed, "zizhu_sessions_total", reason="completed") == 7
    assert value(parsed, "zizhu_sessions_total", reason="timeout") == 2
    assert value(parsed, "zizhu_device_errors_total", device="receipt_printer",
                 code="paperOut") == 4
    assert value(parsed, "zizhu_backoffice_up") == 0


def test_what_is_not_known_is_left_out() -> None:
    text = render(HealthSnapshot(kiosk_id="K", centre_id="C"))
    names = {name for name, _ in samples(text)}
    assert names == {"zizhu_kiosk_info"}


def test_writer_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "zizhu.prom"
    state = {"pending": 1}

    def snapshot() -> HealthSnapshot:
        return HealthSnapshot(kiosk_id="K", centre_id="C",
                              outbox=Counts(state["pending"], 0, None))

    writer = MetricsWriter(path, snapshot)
    writer.write()
    first = path.stat().st_ino
    assert value(samples(path.read_text()), "zizhu_outbox_pending") == 1
    state["pending"] = 5
    writer.write()
    assert path.stat().st_ino != first  # a new file renamed over the old one
    assert value(samples(path.read_text()), "zizhu_outbox_pending") == 5
    assert os.listdir(tmp_path) == ["zizhu.prom"]  # no temporary file left behind


def test_writer_thread_writes_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "zizhu.prom"
    writer = MetricsWriter(path, live_snapshot, interval_s=3600)
    writer.start()
    writer.stop()  # the first write happens before the first wait
    assert value(samples(path.read_text()), "zizhu_outbox_pending") == 3
    assert writer._thread is None


def test_writer_wants_a_prom_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.prom"):
        MetricsWriter(tmp_path / "zizhu.txt", live_snapshot)


# --- the offline figures ----------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def fill_outbox(data_dir: Path, key_file: Path, clock: Clock) -> OutboxStore:
    store = OutboxStore.open(data_dir, key_file, clock=clock)
    store.enqueue(submission("m-1", "ZZ-1"))
    clock.now += timedelta(minutes=5)
    store.enqueue(submission("m-2", "ZZ-1"))
    store.enqueue(submission("m-3", "ZZ-1"))
    head = store.next_pending()
    assert head is not None
    store.quarantine(head.row_id, "rejected: invalid form")
    return store


def test_outbox_counts_read_from_disk_match_the_store(tmp_path: Path) -> None:
    start = datetime(2030, 1, 2, 9, 0, tzinfo=UTC)
    clock = Clock(start)
    key_file = create_key(tmp_path / "outbox.key")
    with fill_outbox(tmp_path / "data", key_file, clock) as store:
        now = start + timedelta(minutes=30)
        stats = store.stats(now)
        counts = outbox_counts_from_disk(tmp_path / "data" / "outbox.db", now)
    assert (counts.pending, counts.quarantined) == (stats.pending, stats.quarantined) == (2, 1)
    assert counts.oldest_pending_age_s == stats.oldest_pending_age_s == 25 * 60


def test_a_missing_outbox_is_empty(tmp_path: Path) -> None:
    counts = outbox_counts_from_disk(tmp_path / "outbox.db")
    assert (counts.pending, counts.quarantined, counts.oldest_pending_age_s) == (0, 0, None)
    assert not (tmp_path / "outbox.db").exists()  # looking did not create it


def test_activity_counted_from_the_audit_log(tmp_path: Path) -> None:
    with open_database(tmp_path / "kiosk.db") as db:
        audit = AuditLog(db)
        for reason in ("completed", "completed", "timeout"):
            audit.record("session.end", session_id="s", detail={"reason": reason})
        audit.record("device.Error", device_id="receipt_printer",
                     detail={"severity": "ALARM", "error": "paperOut", "action": "print"})
        audit.record("device.StatusChanged", device_id="receipt_printer",
                     detail={"state": "online"})
    activity = activity_from_audit(tmp_path / "kiosk.db")
    assert dict(activity.sessions) == {"completed": 2, "timeout": 1}
    assert dict(activity.errors) == {("receipt_printer", "paperOut"): 1}


def test_cli_writes_the_offline_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    fill_outbox(data, create_key(data / "outbox.key"),
                Clock(datetime.now(UTC) - timedelta(hours=1))).close()
    with open_database(data / "kiosk.db") as db:
        AuditLog(db).record("session.end", session_id="s", detail={"reason": "cancelled"})
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[kiosk]\nid = "ZZ-9"\ncentre_id = "C-9"\ndata_dir = "{data}"\n'
                      '[backoffice]\nurl = "http://127.0.0.1:9"\n', encoding="utf-8")
    out = tmp_path / "textfile" / "zizhu.prom"
    out.parent.mkdir()

    assert cli.main(["metrics", "--config", str(config), "--out", str(out)]) == 0
    parsed = samples(out.read_text())
    assert value(parsed, "zizhu_outbox_pending") == 2
    assert value(parsed, "zizhu_outbox_quarantined") == 1
    # The oldest waiting submission was enqueued an hour ago on the test's clock.
    assert value(parsed, "zizhu_outbox_oldest_pending_age_seconds") == pytest.approx(3600,
                                                                                   abs=300)
    assert value(parsed, "zizhu_sessions_total", reason="cancelled") == 1
    assert not any(name.startswith(("zizhu_device_state", "zizhu_app_state"))
                   for name, _ in parsed)  # the app's own figures are not invented

    # --if-stale: a file the app refreshed recently is left alone
    inode = out.stat().st_ino
    assert cli.main(["metrics", "--config", str(config), "--out", str(out),
                     "--if-stale", "3600"]) == 0
    assert out.stat().st_ino == inode
    os.utime(out, (0, 0))  # the app stopped writing long ago
    assert cli.main(["metrics", "--config", str(config), "--out", str(out),
                     "--if-stale", "3600"]) == 0
    assert out.stat().st_ino != inode
