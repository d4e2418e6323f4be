"""The kiosk's health as a Prometheus text file, for node_exporter's textfile collector.

A fleet of hundreds of kiosks is watched with the tools a centre's operators already run:
node_exporter on each kiosk reads ``*.prom`` files from its textfile directory, Prometheus
scrapes it, alert rules fire on ``zizhu_device_state{state!="online"}``, paper running out,
an outbox that does not drain, or a file that stopped being refreshed
(``node_textfile_mtime_seconds``). The file is replaced atomically (prometheus_client's
``write_to_textfile``: temporary file in the same directory, then rename), so the collector
never reads half a file.

Two writers, the same metric names:

- :class:`MetricsWriter`, in the running app, every few seconds: everything, live.
- ``kiosk metrics`` (:func:`offline_snapshot`), from a timer: what can be known without the
  app (outbox depth from its database, session and error counts from the audit log). With
  ``--if-stale`` it writes only when the app has stopped refreshing the file, so the two never
  fight over it.

No personal data: labels are device names, states, error codes and end reasons.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from devices.contract import DeviceState, DeviceStatus, PaperState
from flows.maintenance import PRINTED, STATE_FILE, MaintenanceStateFile, OutboxReport
from kiosk.services import AppState, app_state
from kiosk.storage.models import AuditEvent

if TYPE_CHECKING:
    from kiosk.app import Kiosk

log = logging.getLogger(__name__)

PREFIX = "zizhu"
DEFAULT_INTERVAL_S = 15.0
# Where node_exporter's textfile collector looks on the appliance (systemd/README.md), and the
# name systemd/health-check.py expects the app to keep fresh.
TEXTFILE_DIR = Path("/var/lib/zizhu/metrics")
KIOSK_FILE = "zizhu_kiosk.prom"
METRICS_FILE_ENV = "ZIZHU_METRICS_FILE"


class OutboxCounts(Protocol):
    """What the metrics need from the outbox; ``OutboxStore.stats()`` and
    ``OutboxWorker.health()`` both fit."""

    @property
    def pending(self) -> int: ...

    @property
    def quarantined(self) -> int: ...

    @property
    def oldest_pending_age_s(self) -> float | None: ...


@dataclass(frozen=True)
class Activity:
    """Counters since the audit log began (or was last pruned): Prometheus takes a drop as a
    counter reset, so ``rate()`` and ``increase()`` stay right."""

    sessions: Mapping[str, int] = field(default_factory=dict)  # end reason -> sessions
    errors: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (device, code) -> n
    documents: Mapping[str, int] = field(default_factory=dict)  # document kind -> printed
    pages: int = 0  # pages printed (test pages included: they use paper too)


@dataclass(frozen=True)
class HealthSnapshot:
    """One reading of the kiosk's health. ``None`` (or empty) leaves a metric out: the offline
    writer cannot know device or app states and must not pretend to."""

    kiosk_id: str
    centre_id: str
    version: str = "unknown"
    app_state: AppState | None = None
    started_at: float | None = None  # Unix time the app started
    devices: Mapping[str, DeviceStatus] = field(default_factory=dict)
    outbox: OutboxCounts | None = None
    activity: Activity | None = None
    backoffice_up: bool | None = None
    out_of_service: bool | None = None  # a technician took the kiosk out of service


def _state_set(name: str, doc: str, label: str, states: list[str], current: str | None,
               extra: Mapping[str, str] | None = None) -> GaugeMetricFamily:
    """One sample per possible state, 1 for the current one: queries and alerts select a
    state by label, and a state never seen still exists as a 0 series."""
    extra = dict(extra or {})
    family = GaugeMetricFamily(name, doc, labels=[*extra, label])
    for state in states:
        family.add_metric([*extra.values(), state], 1.0 if state == current else 0.0)
    return family


class HealthCollector(Collector):
    """Turns the snapshot of the moment into metric families at each collection."""

    def __init__(self, snapshot: Callable[[], HealthSnapshot],
                 clock: Callable[[], float] = time.time) -> None:
        self._snapshot = snapshot
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        now = self._clock()
        info = GaugeMetricFamily(f"{PREFIX}_kiosk_info", "This kiosk; always 1.",
                                 labels=["kiosk_id", "centre_id", "version"])
        info.add_metric([s.kiosk_id, s.centre_id, s.version], 1.0)
        yield info
        if s.app_state is not None:
            yield _state_set(f"{PREFIX}_app_state", "CUSS application state (1 = current).",
                             "state", [a.value for a in AppState], s.app_state.value)
        if s.started_at is not None:
            yield GaugeMetricFamily(f"{PREFIX}_start_time_seconds",
                                    "When the kiosk app started, Unix time.", value=s.started_at)
            yield GaugeMetricFamily(f"{PREFIX}_uptime_seconds", "Seconds since the app started.",
                                    value=max(0.0, now - s.started_at))
        yield from self._devices(s.devices)
        if s.backoffice_up is not None:
            yield GaugeMetricFamily(f"{PREFIX}_backoffice_up",
                                    "1 when the back office answered its last health check.",
                                    value=1.0 if s.backoffice_up else 0.0)
        if s.out_of_service is not None:
            yield GaugeMetricFamily(f"{PREFIX}_out_of_service",
                                    "1 while a technician has taken the kiosk out of service "
                                    "(maintenance mode), not a fault.",
                                    value=1.0 if s.out_of_service else 0.0)
        if s.outbox is not None:
            yield from self._outbox(s.outbox)
        if s.activity is not None:
            yield from self._activity(s.activity)

    def _devices(self, devices: Mapping[str, DeviceStatus]) -> Iterator[Metric]:
        if not devices:
            return
        states = [d.value for d in DeviceState]
        family = GaugeMetricFamily(f"{PREFIX}_device_state",
                                   "XFS4IoT device state (1 = current).",
                                   labels=["device", "state"])
        for name, status in sorted(devices.items()):
            for state in states:
                family.add_metric([name, state], 1.0 if status.state.value == state else 0.0)
        yield family
        printers = {n: st for n, st in sorted(devices.items()) if st.paper is not None}
        if printers:
            paper = GaugeMetricFamily(f"{PREFIX}_printer_paper",
                                      "Paper supply of a printer (1 = current level).",
                                      labels=["device", "level"])
            for name, status in printers.items():
                for level in PaperState:
                    paper.add_metric([name, level.value], 1.0 if status.paper is level else 0.0)
            yield paper
        queues = {n: st.queue_depth for n, st in sorted(devices.items())
                  if st.queue_depth is not None}
        if queues:
            depth = GaugeMetricFamily(f"{PREFIX}_printer_queue_depth",
                                      "Print jobs waiting in a printer's queue.",
                                      labels=["device"])
            for name, value in queues.items():
                depth.add_metric([name], float(value))
            yield depth

    def _outbox(self, outbox: OutboxCounts) -> Iterator[Metric]:
        yield GaugeMetricFamily(f"{PREFIX}_outbox_pending",
                                "Applications waiting for the back office.",
                                value=float(outbox.pending))
        yield GaugeMetricFamily(f"{PREFIX}_outbox_quarantined",
                                "Applications the back office refused, set aside for staff.",
                                value=float(outbox.quarantined))
        yield GaugeMetricFamily(f"{PREFIX}_outbox_oldest_pending_age_seconds",
                                "Age of the oldest waiting application; 0 when none waits.",
                                value=float(outbox.oldest_pending_age_s or 0.0))

    def _activity(self, activity: Activity) -> Iterator[Metric]:
        sessions = CounterMetricFamily(f"{PREFIX}_sessions", "Citizen sessions ended, by how.",
                                       labels=["reason"])
        for reason, count in sorted(activity.sessions.items()):
            sessions.add_metric([reason], float(count))
        yield sessions
        errors = CounterMetricFamily(f"{PREFIX}_device_errors",
                                     "Device Error events, by device and error code.",
                                     labels=["device", "code"])
        for (device, code), count in sorted(activity.errors.items()):
            errors.add_metric([device, code], float(count))
        yield errors
        documents = CounterMetricFamily(f"{PREFIX}_printed_documents",
                                        "Documents printed, by kind (queue_ticket, "
                                        "application_receipt, certificate, test_page ...).",
                                        labels=["document"])
        for kind, count in sorted(activity.documents.items()):
            documents.add_metric([kind], float(count))
        yield documents
        yield CounterMetricFamily(f"{PREFIX}_printed_pages", "Pages printed, all printers.",
                                  value=float(activity.pages))


def registry_for(snapshot: Callable[[], HealthSnapshot],
                 clock: Callable[[], float] = time.time) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(snapshot, clock))
    return registry


def render(snapshot: HealthSnapshot, clock: Callable[[], float] = time.time) -> str:
    """The text exposition of one snapshot (for a maintenance screen or a test)."""
    return generate_latest(registry_for(lambda: snapshot, clock)).decode("utf-8")


class MetricsWriter:
    """Writes the file from ``snapshot()``: call :meth:`write` from a timer of the app's, or
    :meth:`start` a thread that does it every ``interval_s``. A failed write is logged and the
    next one tried; health reporting never takes the kiosk down."""

    def __init__(self, path: Path, snapshot: Callable[[], HealthSnapshot], *,
                 interval_s: float = DEFAULT_INTERVAL_S,
                 clock: Callable[[], float] = time.time) -> None:
        if Path(path).suffix != ".prom":
            raise ValueError(f"{path}: node_exporter reads only files ending in .prom")
        self.path = Path(path)
        self.interval_s = interval_s
        self._registry = registry_for(snapshot, clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write(self) -> None:
        """Write once, atomically. Raises OSError when the directory is not writable."""
        write_to_textfile(str(self.path), self._registry)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="metrics-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                self.write()
            except Exception:
                log.exception("metrics file %s not written", self.path)
            if self._stop.wait(self.interval_s):
                return


# --- the offline writer -----------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxDiskCounts:
    pending: int
    quarantined: int
    oldest_pending_age_s: float | None


@contextmanager
def _read_only(path: Path) -> Iterator[Session]:
    # Read-only and never migrated: a health timer must not change the kiosk's files.
    engine = create_engine("sqlite://", poolclass=NullPool, creator=lambda: sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0))
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def outbox_counts_from_disk(db_path: Path, now: datetime | None = None) -> OutboxDiskCounts:
    """Counts from the outbox database, read-only; no key needed (counts are not sealed).
    A missing file is an empty outbox."""
    from kiosk.outbox.models import PENDING, QUARANTINED, OutboxSubmission

    if not db_path.exists():
        return OutboxDiskCounts(0, 0, None)
    now = now or datetime.now(UTC)
    with _read_only(db_path) as session:
        counts: dict[str, int] = {state: n for state, n in session.execute(
            select(OutboxSubmission.state, func.count()).group_by(OutboxSubmission.state))}
        oldest = session.scalar(select(func.min(OutboxSubmission.created_at))
                                .where(OutboxSubmission.state == PENDING))
    if oldest is not None and oldest.tzinfo is None:  # min() bypasses the column's type
        oldest = oldest.replace(tzinfo=UTC)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else None
    return OutboxDiskCounts(counts.get(PENDING, 0), counts.get(QUARANTINED, 0), age)


def activity_from_audit(db_path: Path, since: datetime | None = None) -> Activity:
    """Session ends by reason, device errors by code, and printed documents by kind with their
    pages, counted in the audit log (the rows kiosk.session, the app's device listener and
    ``flows.print_job.PrintJob`` write: ``print.printed``); only rows from ``since`` on when
    given."""
    if not db_path.exists():
        return Activity()
    reason = func.coalesce(func.json_extract(AuditEvent.detail, "$.reason"), "unknown")
    code = func.coalesce(func.json_extract(AuditEvent.detail, "$.error"), "unknown")
    device = func.coalesce(AuditEvent.device_id, "unknown")
    document = func.coalesce(func.json_extract(AuditEvent.detail, "$.kind"), "unknown")
    pages = func.coalesce(func.sum(func.json_extract(AuditEvent.detail, "$.pages")), 0)
    # A duplicate (the key had printed before) put no new paper out.
    fresh = func.coalesce(func.json_extract(AuditEvent.detail, "$.duplicate"), 0) == 0
    window = [] if since is None else [AuditEvent.at >= since]
    with _read_only(db_path) as session:
        sessions = {str(r): n for r, n in session.execute(
            select(reason, func.count()).where(AuditEvent.kind == "session.end", *window)
            .group_by(reason))}
        errors = {(str(d), str(c)): n for d, c, n in session.execute(
            select(device, code, func.count()).where(AuditEvent.kind == "device.Error", *window)
            .group_by(device, code))}
        printed = session.execute(
            select(document, func.count(), pages)
            .where(AuditEvent.kind == PRINTED, fresh, *window)
            .group_by(document)).all()
    return Activity(sessions, errors, {str(d): n for d, n, _p in printed},
                    int(sum(p for _d, _n, p in printed)))


def last_delivery_from_disk(db_path: Path) -> datetime | None:
    """When the outbox last handed a submission to the back office (its receipts table, kept
    90 days), read-only; None when nothing was delivered or there is no outbox."""
    from kiosk.outbox.models import OutboxReceipt

    if not db_path.exists():
        return None
    with _read_only(db_path) as session:
        last = session.scalar(select(func.max(OutboxReceipt.delivered_at)))
    if isinstance(last, str):  # max() bypasses the column's type
        last = datetime.fromisoformat(last)
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return last


def app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zizhu")
    except PackageNotFoundError:
        return "unknown"


def offline_snapshot(kiosk_id: str, centre_id: str, data_dir: Path) -> HealthSnapshot:
    """What the files in ``data_dir`` tell without the app: outbox, counters, and whether a
    technician took the kiosk out of service."""
    return HealthSnapshot(
        kiosk_id=kiosk_id, centre_id=centre_id, version=app_version(),
        outbox=outbox_counts_from_disk(data_dir / "outbox.db"),
        activity=activity_from_audit(data_dir / "kiosk.db"),
        out_of_service=MaintenanceStateFile(data_dir / STATE_FILE).out_of_service_message()
        is not None)


def outbox_report(kiosk: Kiosk) -> OutboxReport | None:
    """The outbox as maintenance mode shows it: depth, what was set aside, the oldest waiting,
    and the last delivery (from the worker, else from the receipts on disk, which outlive a
    restart). None when the kiosk has no outbox."""
    if kiosk.outbox is None:
        return None
    last_delivery = last_error = running = None
    if kiosk.outbox_worker is not None:
        health = kiosk.outbox_worker.health()
        pending, quarantined = health.pending, health.quarantined
        oldest, last_delivery = health.oldest_pending_age_s, health.last_delivery_at
        last_error, running = health.last_error, health.running
    else:
        stats = kiosk.outbox.stats()
        pending, quarantined, oldest = stats.pending, stats.quarantined, stats.oldest_pending_age_s
    if last_delivery is None:
        last_delivery = last_delivery_from_disk(kiosk.config.kiosk.data_dir / "outbox.db")
    return OutboxReport(pending, quarantined, oldest, last_delivery, last_error, running)


# --- the live writer, started by the app ------------------------------------------------------


def metrics_path(data_dir: Path) -> Path:
    """Where the running app writes: ``$ZIZHU_METRICS_FILE``, else the appliance's textfile
    directory when it exists, else ``<data_dir>/metrics/zizhu_kiosk.prom`` (development)."""
    configured = os.environ.get(METRICS_FILE_ENV)
    if configured:
        return Path(configured)
    if TEXTFILE_DIR.is_dir():
        return TEXTFILE_DIR / KIOSK_FILE
    return data_dir / "metrics" / KIOSK_FILE


def live_snapshot(kiosk: Kiosk, started_at: float,
                  maintenance: MaintenanceStateFile | None = None) -> HealthSnapshot:
    """Everything the running app knows. Reads only thread-safe snapshots (device statuses,
    outbox counts, the audit log through its own read-only connection)."""
    config = kiosk.config
    data_dir = config.kiosk.data_dir
    state_file = maintenance or MaintenanceStateFile(data_dir / STATE_FILE)
    out_of_service = state_file.out_of_service_message() is not None
    statuses = kiosk.statuses()
    state = app_state(kiosk.availability(), kiosk.sessions.current is not None)
    if out_of_service:
        state = AppState.UNAVAILABLE
    outbox: OutboxCounts | None = None
    if kiosk.outbox_worker is not None:
        outbox = kiosk.outbox_worker.health()
    elif kiosk.outbox is not None:
        outbox = kiosk.outbox.stats()
    heartbeat = kiosk.heartbeat
    backoffice_up = None
    if heartbeat is not None and (heartbeat.sent or heartbeat.failed):
        backoffice_up = heartbeat.last_error is None and heartbeat.last_acknowledged is not None
    return HealthSnapshot(
        kiosk_id=config.kiosk.id, centre_id=config.kiosk.centre_id, version=app_version(),
        app_state=state, started_at=started_at, devices=statuses, outbox=outbox,
        activity=activity_from_audit(data_dir / "kiosk.db"), backoffice_up=backoffice_up,
        out_of_service=out_of_service)


def start_metrics(kiosk: Kiosk, path: Path | None = None, *,
                  interval_s: float = DEFAULT_INTERVAL_S,
                  started_at: float | None = None) -> MetricsWriter:
    """Start the thread that keeps the kiosk's text file fresh; ``writer.stop()`` at close.
    The first write happens at once on that thread; a directory that cannot be written is
    logged at each try and never stops the kiosk."""
    target = path or metrics_path(kiosk.config.kiosk.data_dir)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as problem:
        log.warning("metrics folder %s not created (%s)", target.parent, problem)
    started = started_at if started_at is not None else time.time()
    state_file = MaintenanceStateFile(kiosk.config.kiosk.data_dir / STATE_FILE)
    writer = MetricsWriter(target, lambda: live_snapshot(kiosk, started, state_file),
                           interval_s=interval_s)
    writer.start()
    return writer


def is_fresh(path: Path, max_age_s: float, now: float | None = None) -> bool:
    """True when ``path`` was written less than ``max_age_s`` ago (the app is writing it)."""
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return False
    return (now if now is not None else time.time()) - mtime < max_age_s


__all__ = [
    "Activity",
    "HealthCollector",
    "HealthSnapshot",
    "MetricsWriter",
    "OutboxCounts",
    "activity_from_audit",
    "is_fresh",
    "last_delivery_from_disk",
    "live_snapshot",
    "metrics_path",
    "offline_snapshot",
    "outbox_counts_from_disk",
    "outbox_report",
    "render",
    "start_metrics",
]
