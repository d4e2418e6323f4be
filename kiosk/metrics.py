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
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from devices.contract import DeviceState, DeviceStatus, PaperState
from kiosk.services import AppState
from kiosk.storage.models import AuditEvent

log = logging.getLogger(__name__)

PREFIX = "zizhu"
DEFAULT_INTERVAL_S = 15.0


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


def activity_from_audit(db_path: Path) -> Activity:
    """Session ends by reason and device errors by code, counted in the audit log (the rows
    kiosk.session and the app's device listener write)."""
    if not db_path.exists():
        return Activity()
    reason = func.coalesce(func.json_extract(AuditEvent.detail, "$.reason"), "unknown")
    code = func.coalesce(func.json_extract(AuditEvent.detail, "$.error"), "unknown")
    device = func.coalesce(AuditEvent.device_id, "unknown")
    with _read_only(db_path) as session:
        sessions = {str(r): n for r, n in session.execute(
            select(reason, func.count()).where(AuditEvent.kind == "session.end")
            .group_by(reason))}
        errors = {(str(d), str(c)): n for d, c, n in session.execute(
            select(device, code, func.count()).where(AuditEvent.kind == "device.Error")
            .group_by(device, code))}
    return Activity(sessions, errors)


def app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zizhu")
    except PackageNotFoundError:
        return "unknown"


def offline_snapshot(kiosk_id: str, centre_id: str, data_dir: Path) -> HealthSnapshot:
    """What the files in ``data_dir`` tell without the app: outbox and counters."""
    return HealthSnapshot(
        kiosk_id=kiosk_id, centre_id=centre_id, version=app_version(),
        outbox=outbox_counts_from_disk(data_dir / "outbox.db"),
        activity=activity_from_audit(data_dir / "kiosk.db"))


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
    "offline_snapshot",
    "outbox_counts_from_disk",
    "render",
]
