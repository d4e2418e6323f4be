"""Composition root: reads the config, builds the drivers named there, the storage, the
back-office client and the flows, and hands them to the UI. Nothing else builds drivers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from devices.camera import Camera
from devices.contract import Device, DeviceStatus, Event, EventKind
from devices.identity import IdentityReader
from devices.printer import Printer
from flows.apply import ApplyFlow, ApplySettings
from flows.certificate import CertificateFlow, CertificateSettings
from flows.checkin import CheckInFlow, CheckInSettings
from flows.identify import IdentifyFlow, IdentifySettings
from flows.ports import ApplicationSubmission, BackOffice, BackOfficeError, CatalogueSource
from flows.print_job import PrintSettings
from flows.query import ProgressPrinting, QueryFlow
from flows.rating import RatingFlow, RatingSettings, RatingSubject
from kiosk.catalogue_cache import CachedCatalogue, CatalogueRefresher
from kiosk.client import DeviceReport, HeartbeatReport, HttpBackOffice, TlsSettings
from kiosk.config import KioskConfig
from kiosk.drivers import build_device, needs_peer
from kiosk.heartbeat import HeartbeatSender
from kiosk.held_prints import HeldPrintStore
from kiosk.i18n import I18n
from kiosk.metrics import MetricsWriter, app_version
from kiosk.outbox import OutboxStore, OutboxWorker, create_key
from kiosk.services import Availability, evaluate
from kiosk.session import EndReason, Session, SessionManager
from kiosk.storage.audit import AuditLog
from kiosk.storage.db import Database, open_database
from kiosk.storage.used_codes import UsedCodeStore

log = logging.getLogger(__name__)

# Staff see a kiosk as stale after three missed beats (the back office's default is 180 s).
HEARTBEAT_INTERVAL_S = 60.0


class KioskOutbox:
    """The outbox as the application journey sees it: store, and ask whether delivered."""

    def __init__(self, store: OutboxStore) -> None:
        self.store = store

    def enqueue(self, submission: ApplicationSubmission) -> str:
        return self.store.enqueue(submission)

    def delivered_number(self, local_tracking_number: str) -> str | None:
        entry = self.store.lookup(local_tracking_number)
        return entry.tracking_number if entry is not None else None


@dataclass
class Kiosk:
    config: KioskConfig
    devices: dict[str, Device]
    db: Database
    audit: AuditLog
    used_codes: UsedCodeStore
    backoffice: BackOffice
    sessions: SessionManager
    i18n: I18n
    outbox: OutboxStore | None = None
    outbox_worker: OutboxWorker | None = None
    heartbeat: HeartbeatSender | None = None
    catalogue: CatalogueSource | None = None
    catalogue_refresher: CatalogueRefresher | None = None
    metrics: MetricsWriter | None = None
    held_prints: HeldPrintStore | None = None

    def now(self) -> datetime:
        return self.config.kiosk.now()

    def today(self) -> date:
        return self.now().date()

    def statuses(self) -> dict[str, DeviceStatus]:
        return {name: device.status() for name, device in self.devices.items()}

    def availability(self) -> list[Availability]:
        return evaluate(self.statuses())

    def start_session(self) -> Session:
        session = self.sessions.start()
        for device in self.devices.values():
            device.session_id = session.id
        session.on_end(self._forget_session_on_devices)
        session.on_end(lambda: self.i18n.set_language(self.i18n.default))
        return session

    def _forget_session_on_devices(self) -> None:
        for device in self.devices.values():
            device.cancel()
            device.session_id = None

    def checkin_flow(self, session: Session) -> CheckInFlow:
        t, codes, kiosk = self.config.timeouts, self.config.appointment_codes, self.config.kiosk
        flow = CheckInFlow(
            scanner=self.devices["barcode"],  # type: ignore[arg-type]
            printer=self.devices["receipt_printer"],  # type: ignore[arg-type]
            backoffice=self.backoffice,
            used_codes=self.used_codes,
            audit=self.audit,
            settings=CheckInSettings(kiosk.id, kiosk.centre_id, t.scan_s, t.print_s, t.take_s,
                                     centre_name=kiosk.centre_label,
                                     grace_before=codes.grace_before,
                                     grace_after=codes.grace_after,
                                     trusted_keys=codes.public_keys),
            session_id=session.id,
            now=self.now,
            translate=self.i18n.gettext,
            held=self.held_prints,
        )
        flow.busy_listeners.append(self.sessions.device_busy)
        session.on_end(flow.wipe)
        return flow

    def _identity_reader(self, name: str) -> IdentityReader | None:
        device = self.devices.get(name)
        return device if isinstance(device, IdentityReader) else None

    def _camera(self) -> Camera | None:
        device = self.devices.get("camera")
        return device if isinstance(device, Camera) else None

    def scanner_camera(self) -> Camera | None:
        """The camera, when it is what reads QR codes: its picture belongs on the scan screen."""
        scanner = self.config.devices.get("barcode")
        if scanner is None or not needs_peer("barcode", scanner):
            return None
        return self._camera()

    def identify_flow(self, session: Session) -> IdentifyFlow:
        flow = IdentifyFlow(
            id_card=self._identity_reader("id_card"),
            smart_card=self._identity_reader("smart_card"),
            audit=self.audit,
            session_id=session.id,
            today=self.today,
            settings=IdentifySettings(self.config.timeouts.read_id_s),
            camera=self._camera(),
            read_mrz=_read_mrz_text,
        )
        flow.busy_listeners.append(self.sessions.device_busy)
        session.on_end(flow.wipe)
        return flow

    def _printer(self, name: str) -> Printer | None:
        device = self.devices.get(name)
        return device if isinstance(device, Printer) else None

    def _print_settings(self) -> PrintSettings:
        t = self.config.timeouts
        return PrintSettings(print_timeout_s=t.print_s, take_timeout_s=t.take_s)

    def query_flow(self, session: Session) -> QueryFlow:
        receipt = self._printer("receipt_printer")
        printing = (ProgressPrinting(receipt, self.config.kiosk.centre_label, self.now,
                                     progress=self.backoffice,  # type: ignore[arg-type]
                                     held=self.held_prints, settings=self._print_settings())
                    if receipt is not None else None)
        flow = QueryFlow(identify=self.identify_flow(session), backoffice=self.backoffice,
                         audit=self.audit, session_id=session.id, printing=printing)
        session.on_end(flow.wipe)
        return flow

    def certificate_flow(self, session: Session) -> CertificateFlow:
        """自助出件 on the A4 printer."""
        flow = CertificateFlow(
            identify=self.identify_flow(session), desk=self.backoffice,  # type: ignore[arg-type]
            printer=self._printer("document_printer"), audit=self.audit,
            settings=CertificateSettings(self.config.kiosk.id, self._print_settings()),
            session_id=session.id, held=self.held_prints)
        session.on_end(flow.wipe)
        return flow

    def rating_flow(self, session: Session, subject: RatingSubject | None = None) -> RatingFlow:
        """好差评 of a transaction (its 办件编号), or of the visit."""
        kiosk = self.config.kiosk
        flow = RatingFlow(desk=self.backoffice, scheme=self.backoffice,  # type: ignore[arg-type]
                          audit=self.audit, settings=RatingSettings(kiosk.id, kiosk.centre_id),
                          subject=subject or RatingSubject(session.id))
        session.on_end(flow.wipe)
        return flow

    def apply_flow(self, session: Session, purpose: str = "apply") -> ApplyFlow:
        """自助申报, or with ``purpose="guide"`` the 办事指南 (items and notices only)."""
        t, kiosk = self.config.timeouts, self.config.kiosk
        assert self.outbox is not None and self.catalogue is not None
        printer = self.devices.get("receipt_printer")
        a4 = self.devices.get("document_printer")
        usable_a4 = isinstance(a4, Printer) and a4.status().usable
        flow = ApplyFlow(
            catalogue=self.catalogue, identify=self.identify_flow(session),
            outbox=KioskOutbox(self.outbox),
            printer=printer if isinstance(printer, Printer) else None,
            camera=self._camera(), audit=self.audit,
            settings=ApplySettings(kiosk.id, kiosk.centre_id, kiosk.centre_label,
                                   print_timeout_s=t.print_s, take_timeout_s=t.take_s),
            session_id=session.id, now=self.now, purpose=purpose,
            notice_printer=a4 if usable_a4 else None,  # type: ignore[arg-type]
            held=self.held_prints)
        session.on_end(flow.wipe)
        return flow

    def call_staff(self, session_id: str) -> bool:
        """呼叫帮办: True when the back office took the request."""
        try:
            self.backoffice.call_staff(kiosk_id=self.config.kiosk.id,
                                       centre_id=self.config.kiosk.centre_id,
                                       session_id=session_id)
        except BackOfficeError as error:
            self.audit.record("staff.call_failed", session_id=session_id,
                              detail={"error": error.code})
            return False
        self.audit.record("staff.called", session_id=session_id)
        return True

    def heartbeat_report(self) -> HeartbeatReport:
        """What staff see of this kiosk in the back office: devices and outbox, no personal
        data."""
        devices = tuple(
            DeviceReport(name, str(status.state), str(device.device_class),
                         str(status.paper) if status.paper is not None else None)
            for name, device in self.devices.items() for status in (device.status(),))
        stats = self.outbox.stats() if self.outbox is not None else None
        return HeartbeatReport(
            self.config.kiosk.centre_id, app_version(), devices,
            outbox_depth=stats.pending if stats else 0,
            outbox_quarantined=stats.quarantined if stats else 0,
            outbox_oldest_age_s=stats.oldest_pending_age_s if stats else None)

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
        self.sessions.end(EndReason.SHUTDOWN)
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.catalogue_refresher is not None:
            self.catalogue_refresher.stop()
        if self.outbox_worker is not None:
            self.outbox_worker.stop(5.0)  # a delivery in flight is resent, keyed, next start
        if self.outbox is not None:
            self.outbox.close()
        for device in self.devices.values():
            device.close()
        self.db.close()


def _audit_events(audit: AuditLog) -> Callable[[Event], None]:
    def record(event: Event) -> None:
        if event.kind is EventKind.STATUS_CHANGED:
            status = event.payload
            detail: dict[str, object] = {"state": str(status.state)}
            for key in ("media", "paper", "door"):
                if getattr(status, key) is not None:
                    detail[key] = str(getattr(status, key))
        else:
            # Payloads (a scanned code, a card record) stay out of the audit log.
            detail = {"severity": str(event.severity)}
            if event.error_kind:
                detail["error"] = event.error_kind
            if event.action:
                detail["action"] = event.action
        audit.record(f"device.{event.kind}", session_id=event.session_id,
                     device_id=event.device_id, detail=detail)

    return record


def _read_mrz_text(image: np.ndarray) -> str | None:
    # Imported on first use: OpenCV and Tesseract stay out of the kiosk's start-up.
    from devices.vision.mrz_ocr import read_mrz_text

    return read_mrz_text(image)


def build_kiosk(config: KioskConfig, backoffice: BackOffice | None = None) -> Kiosk:
    data_dir = config.kiosk.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(data_dir / "kiosk.db")
    audit = AuditLog(db)
    devices: dict[str, Device] = {}
    try:
        # A device built on another (the camera's QR reader) comes after the one it uses.
        for name, device_config in sorted(config.devices.items(),
                                          key=lambda item: needs_peer(*item)):
            if device_config.enabled:
                devices[name] = build_device(config, name, device_config, devices)
    except Exception:
        for device in devices.values():
            device.close()
        db.close()
        raise
    listener = _audit_events(audit)
    for device in devices.values():
        device.subscribe(listener)
    sessions = SessionManager(data_dir / "sessions", audit, config.timeouts.idle_s,
                              config.timeouts.countdown_s)
    leftovers = sessions.wipe_leftovers()
    if leftovers:
        audit.record("session.leftovers_wiped", detail={"count": leftovers})
    settings = config.backoffice
    tls = (TlsSettings(settings.ca_file, settings.client_cert, settings.client_key)
           if settings.ca_file or settings.client_cert else None)
    client = backoffice or HttpBackOffice(settings.url, settings.timeout_s, tls=tls)
    kiosk = Kiosk(config, devices, db, audit, UsedCodeStore(db), client, sessions,
                  I18n(config.kiosk.language))
    kiosk.outbox = _open_outbox(config, audit)
    # Documents that did not print, sealed with the outbox key until staff reprint them.
    kiosk.held_prints = HeldPrintStore.open(data_dir, config.outbox_key_file)
    expired = kiosk.held_prints.expire()
    if expired:
        audit.record("print.held_expired", detail={"count": expired})
    cache = CachedCatalogue(client, data_dir / "catalogue")
    kiosk.catalogue = cache
    if isinstance(client, HttpBackOffice):
        kiosk.outbox_worker = OutboxWorker(kiosk.outbox, client)
        kiosk.outbox_worker.start()
        kiosk.heartbeat = HeartbeatSender(client, config.kiosk.id, kiosk.heartbeat_report,
                                          HEARTBEAT_INTERVAL_S)
        kiosk.heartbeat.start()
        kiosk.catalogue_refresher = CatalogueRefresher(cache, config.kiosk.centre_id)
        kiosk.catalogue_refresher.start()
    return kiosk


def _open_outbox(config: KioskConfig, audit: AuditLog) -> OutboxStore:
    """The outbox, sealed with the key provisioning created. A kiosk never provisioned (a
    developer's, a tester's) gets a key on first start; a key that exists but is wrong stops
    the start: a new one would make every waiting submission unreadable."""
    key_file = config.outbox_key_file
    if not key_file.exists():
        create_key(key_file)
        audit.record("outbox.key_created")
    return OutboxStore.open(config.kiosk.data_dir, key_file)
