"""维护模式: what a technician does at the kiosk's touch screen, with no keyboard and no shell.

A hidden gesture opens the PIN pad; the PIN is checked against the salted scrypt hash that
``kiosk provision`` stored (the check is injected: flows do not import the kiosk). Five wrong
PINs lock the pad for a while; the count and the lock live in a small JSON file in the data
folder, so pulling the plug does not hand out five more tries. Every failure and every lock
goes to the audit log.

Behind the PIN: each device's state and last error with a self-test (a test page on each
printer, a card read, a camera frame, a scanned code), counters from the audit log, the
outbox, the documents kept for staff (待补打: a citizen's print that failed twice, reprinted
here on the printer for its paper, or discarded), the network and the back office, the
software version and the image manifest, recent log lines, restart, and out of service with a
message that the attract screen keeps showing until the kiosk is put back in service.

Nothing personal reaches the screen: a card read shows the document type and the masked
number, a camera test the frame's size, a scanner test the code's length; a kept document its
reference, kind and title (户籍证明, never whose: its meta holds tracking and certificate
numbers, which are not shown); log lines are masked again on their way out.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psutil

from devices.barcode import BarcodeReader
from devices.camera import Camera
from devices.contract import (
    CommandResult,
    Completion,
    Device,
    DeviceState,
    DeviceStatus,
    PendingCommand,
)
from devices.identity import IdentityError, IdentityReader, mask_id
from devices.printer import Media, PrintDocument, Printer, PrintReceipt
from flows.base import Flow
from flows.documents import Templates
from flows.ports import AuditSink
from flows.tickets import print_templates

log = logging.getLogger(__name__)

R = TypeVar("R")

STATE_FILE = "maintenance.json"
# What the image says about itself, the first of these that exists: a JSON manifest (the
# agreed place), or the KEY=VALUE release file image-build/build.sh writes into the root.
IMAGE_MANIFEST = Path("/usr/share/zizhu/image-manifest.json")
IMAGE_RELEASE = Path("/usr/lib/zizhu/image-release")
MANIFEST_PATHS: tuple[Path, ...] = (IMAGE_MANIFEST, IMAGE_RELEASE)
JOURNAL_UNIT = "zizhu-kiosk"

# The audit record of a document that came out of a printer (flows/print_job.py writes it for
# every journey that prints through a PrintJob, with kind, pages and duplicate); the tickets,
# receipts and pages counters are made of it.
PRINTED = "print.printed"
TEST_PAGE = "test_page"
# Document kinds (assets/print/<kind>.toml) behind each counter.
TICKET_KINDS = frozenset({"queue_ticket"})
RECEIPT_KINDS = frozenset({"application_receipt"})
CERTIFICATE_KINDS = frozenset({"certificate"})


# --- the persisted state: failed PINs, the lock, out of service ------------------------------


@dataclass(frozen=True)
class MaintenanceRecord:
    failures: int = 0  # wrong PINs since the last right one or the last lock
    locked_until: float | None = None  # Unix time
    out_of_service: str | None = None  # the message the attract screen shows (a msgid)
    out_of_service_since: float | None = None


class MaintenanceStateFile:
    """``<data_dir>/maintenance.json``, replaced atomically and fsync'd: a power cut leaves the
    old record or the new one. Read again only when the file changed, so the attract screen
    may ask twice a second."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int] | None, MaintenanceRecord] | None = None

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as bad:  # a folder this process may not read (a health timer's user)
            log.warning("maintenance state %s not readable (%s)", self.path, bad)
            return None
        return st.st_mtime_ns, st.st_size

    def read(self) -> MaintenanceRecord:
        with self._lock:
            stamp = self._stamp()
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
            record = self._load() if stamp is not None else MaintenanceRecord()
            self._cached = (stamp, record)
            return record

    def _load(self) -> MaintenanceRecord:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("not an object")
            failures = raw.get("failures", 0)
            locked = raw.get("locked_until")
            message = raw.get("out_of_service")
            since = raw.get("out_of_service_since")
            if not (isinstance(failures, int) and failures >= 0
                    and (locked is None or isinstance(locked, int | float))
                    and (message is None or isinstance(message, str))
                    and (since is None or isinstance(since, int | float))):
                raise ValueError("unexpected types")
        except (OSError, ValueError) as bad:
            # Only someone with the disk in hand can damage it, and they need no PIN.
            log.warning("maintenance state %s unreadable (%s); starting afresh", self.path, bad)
            return MaintenanceRecord()
        return MaintenanceRecord(failures, float(locked) if locked is not None else None,
                                 message or None, float(since) if since is not None else None)

    def write(self, record: MaintenanceRecord) -> None:
        data = json.dumps({"failures": record.failures, "locked_until": record.locked_until,
                           "out_of_service": record.out_of_service,
                           "out_of_service_since": record.out_of_service_since})
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".maintenance.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)  # the rename itself must survive a power cut
            finally:
                os.close(dir_fd)
            self._cached = (self._stamp(), record)

    def out_of_service_message(self) -> str | None:
        """The technician's message while the kiosk is out of service, else None."""
        return self.read().out_of_service


# --- what the screens show --------------------------------------------------------------------


class Step(enum.StrEnum):
    NOT_CONFIGURED = "not_configured"  # no PIN was provisioned: maintenance cannot open
    PIN = "pin"
    CHECKING = "checking"
    LOCKED = "locked"
    MENU = "menu"
    CLOSED = "closed"


class Panel(enum.StrEnum):
    DEVICES = "devices"
    COUNTERS = "counters"
    OUTBOX = "outbox"
    HELD = "held"  # 待补打: documents kept for staff to reprint
    NETWORK = "network"
    SOFTWARE = "software"
    LOG = "log"
    SERVICE = "service"


class SelfTest(enum.StrEnum):
    PRINT_PAGE = "print_page"
    READ_CARD = "read_card"
    CAPTURE_FRAME = "capture_frame"
    SCAN_CODE = "scan_code"
    NONE = "none"  # a device class without a self-test


@dataclass(frozen=True)
class SelfTestResult:
    """``detail`` holds nothing personal: pages, document type and masked number, frame size,
    the length of a scanned code."""

    device: str
    test: SelfTest
    ok: bool
    completion: str
    error_code: str | None = None
    detail: Mapping[str, str | int] = field(default_factory=dict)
    at: datetime | None = None


@dataclass(frozen=True)
class DeviceLine:
    name: str
    device_class: str
    driver: str
    state: str
    usable: bool
    paper: str | None = None
    media: str | None = None
    door: str | None = None
    queue_depth: int | None = None
    cameras: tuple[tuple[str, str], ...] = ()
    last_error: str | None = None  # "hardwareError/paperOut"
    last_error_at: datetime | None = None
    test: SelfTest = SelfTest.NONE


@dataclass(frozen=True)
class Counters:
    sessions: int = 0
    tickets: int = 0
    receipts: int = 0
    certificates: int = 0
    pages: int = 0


@dataclass(frozen=True)
class CounterReport:
    today: Counters
    total: Counters


@dataclass(frozen=True)
class OutboxReport:
    pending: int
    quarantined: int
    oldest_pending_age_s: float | None = None
    last_delivery_at: datetime | None = None
    last_error: str | None = None
    running: bool | None = None  # the delivery worker (None: the kiosk has none)


@dataclass(frozen=True)
class Interface:
    name: str
    up: bool
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class NetworkReport:
    interfaces: tuple[Interface, ...]
    default_route: bool
    backoffice_url: str
    backoffice_ok: bool


@dataclass(frozen=True)
class SoftwareReport:
    version: str
    python: str
    manifest_path: str
    manifest: tuple[tuple[str, str], ...] | None  # None: not an appliance image
    manifest_problem: str | None = None  # the file is there but unreadable


@dataclass(frozen=True)
class HeldLine:
    """A document kept for staff, as the panel lists it: what it is, never whose."""

    reference: str  # what the citizen was told to give staff
    kind: str  # certificate, progress_query ...
    title: str  # the document's name: 户籍证明, 办件进度
    media: str
    held_at: datetime
    expires_at: datetime
    reason: str  # the printer's error code on the citizen's last attempt
    printer: str | None  # the device it reprints on; None: no printer here takes its paper


@dataclass(frozen=True)
class HeldReport:
    documents: tuple[HeldLine, ...] = ()
    kept: bool = True  # False: this kiosk keeps no documents for staff (no store)
    problem: str | None = None  # the store could not be read (the error's type)


class HeldAction(enum.StrEnum):
    REPRINT = "reprint"
    DISCARD = "discard"


@dataclass(frozen=True)
class HeldOutcome:
    """What a reprint or a discard came to; a document reprinted or discarded has left the
    list, so this is what still names it on the panel."""

    reference: str
    kind: str
    title: str
    action: HeldAction
    ok: bool
    completion: str = ""
    error: str | None = None  # a device code (paperJammed), notKept, noDevice, an error type
    pages: int = 0
    duplicate: bool = False  # the key had printed before: nothing new came out
    printer: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class MaintenanceView:
    step: Step
    panel: Panel = Panel.DEVICES
    attempts_left: int | None = None  # set after a wrong PIN
    locked_until: datetime | None = None
    devices: tuple[DeviceLine, ...] = ()
    testing: str | None = None  # the device whose self-test runs now
    results: Mapping[str, SelfTestResult] = field(default_factory=dict)
    counters: CounterReport | None = None
    outbox: OutboxReport | None = None
    network: NetworkReport | None = None
    software: SoftwareReport | None = None
    log_lines: tuple[str, ...] = ()
    log_source: str = ""  # "journal" or "audit"
    held: HeldReport | None = None  # None until the panel has been read
    reprinting: str | None = None  # the kept document printing now
    held_results: Mapping[str, HeldOutcome] = field(default_factory=dict)
    out_of_service: str | None = None
    closed_reason: str | None = None


# --- ports --------------------------------------------------------------------------------------


class AuditEntry(Protocol):
    """One audit record as :meth:`AuditTrail.recent` returns it (kiosk.storage.audit)."""

    @property
    def at(self) -> datetime: ...

    @property
    def kind(self) -> str: ...

    @property
    def device_id(self) -> str | None: ...

    @property
    def detail(self) -> Mapping[str, Any]: ...


class AuditTrail(AuditSink, Protocol):
    def recent(self, limit: int = 100) -> Sequence[AuditEntry]: ...


class Tally(Protocol):
    """Counts from the audit log (``kiosk.metrics.Activity`` fits): sessions by end reason,
    printed documents by kind and their pages (``print.printed``, duplicates left out)."""

    @property
    def sessions(self) -> Mapping[str, int]: ...

    @property
    def documents(self) -> Mapping[str, int]: ...

    @property
    def pages(self) -> int: ...


class HeldSummary(Protocol):
    """One document kept for staff as the store lists it (``kiosk.held_prints.HeldPrint``)."""

    @property
    def reference(self) -> str: ...

    @property
    def held_at(self) -> datetime: ...

    @property
    def expires_at(self) -> datetime: ...

    @property
    def kind(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def media(self) -> Media: ...

    @property
    def reason(self) -> str: ...

    @property
    def session_id(self) -> str | None: ...


class HeldDocuments(Protocol):
    """Documents a citizen could not get printed, kept for staff (``kiosk.held_prints.
    HeldPrintStore``: sealed at rest, expire on their own)."""

    def list(self) -> Sequence[HeldSummary]:
        """What waits, oldest first."""
        ...

    def reprint(self, reference: str, printer: Printer,
                timeout_s: float = 60.0) -> CommandResult[PrintReceipt]:
        """Print it on ``printer`` and wait; removed once it came out."""
        ...

    def remove(self, reference: str) -> bool:
        """Drop it; False when it was not there."""
        ...


# The printer each paper goes to (the device names kiosk/app.py uses); any printer for that
# paper where the named one is missing.
HELD_PRINTERS: Mapping[Media, str] = {Media.A4: "document_printer",
                                      Media.ROLL_80MM: "receipt_printer"}


@dataclass(frozen=True)
class MaintenanceSettings:
    max_failures: int = 5
    lockout_s: float = 15 * 60.0
    idle_s: float = 120.0  # no touch for this long: back to the attract screen
    print_timeout_s: float = 30.0
    read_timeout_s: float = 20.0  # the technician has to find a card and lay it down
    capture_timeout_s: float = 5.0
    scan_timeout_s: float = 20.0
    log_lines: int = 50


@dataclass(frozen=True)
class KioskFacts:
    """Who this kiosk is, for the test page and the panels."""

    kiosk_id: str
    centre_name: str
    backoffice_url: str
    version: str


# --- the flow ---------------------------------------------------------------------------------


class MaintenanceFlow(Flow[MaintenanceView]):
    """Blocking methods (``enter_pin``, ``self_test``, ``show_panel``) run off the UI thread;
    ``tick``, ``touch`` and ``close`` may be called from any thread."""

    def __init__(self, *, pin_check: Callable[[str], bool] | None,
                 state: MaintenanceStateFile, audit: AuditTrail,
                 devices: Mapping[str, Device], facts: KioskFacts,
                 tally: Callable[[datetime | None], Tally],
                 outbox: Callable[[], OutboxReport | None],
                 backoffice_health: Callable[[], bool],
                 mask: Callable[[str], str],
                 restart: Callable[[], None],
                 settings: MaintenanceSettings | None = None,
                 manifest_paths: Sequence[Path] = MANIFEST_PATHS,
                 journal: Callable[[int], Sequence[str] | None] | None = None,
                 network: Callable[[], tuple[tuple[Interface, ...], bool]] | None = None,
                 templates: Templates | None = None,
                 held: HeldDocuments | None = None,
                 now: Callable[[], datetime] | None = None,
                 clock: Callable[[], float] = time.time,
                 idle_clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(MaintenanceView(Step.CLOSED))
        self._pin_check = pin_check
        self.state = state
        self.audit = audit
        self.devices = dict(devices)
        self.facts = facts
        self._tally = tally
        self._outbox = outbox
        self._health = backoffice_health
        self._mask = mask
        self._restart = restart
        self.settings = settings or MaintenanceSettings()
        self.manifest_paths = tuple(Path(p) for p in manifest_paths)
        self._journal = journal if journal is not None else read_journal
        self._network = network or probe_network
        self._templates = templates
        self._held = held
        self._clock = clock
        self._now = now or (lambda: datetime.fromtimestamp(self._clock(), UTC).astimezone())
        self._idle_clock = idle_clock
        self._last_touch = idle_clock()

    # -- entering -----------------------------------------------------------------------------
    def out_of_service_message(self) -> str | None:
        return self.state.out_of_service_message()

    def _locked_until(self) -> float | None:
        """The lock's end, or None; an expired lock is cleared (with a fresh count)."""
        record = self.state.read()
        if record.locked_until is None:
            return None
        now = self._clock()
        if record.locked_until <= now:
            self.state.write(replace(record, failures=0, locked_until=None))
            return None
        if record.locked_until - now > self.settings.lockout_s:
            # The wall clock was set back: the lock lasts its length from now, no longer.
            until = now + self.settings.lockout_s
            self.state.write(replace(record, locked_until=until))
            return until
        return record.locked_until

    def _at(self, unix: float) -> datetime:
        return datetime.fromtimestamp(unix, UTC).astimezone(self._now().tzinfo)

    def open(self) -> None:
        """The gesture was made: the PIN pad, or why it cannot be used now."""
        self.touch()
        if self._pin_check is None:
            self.audit.record("maintenance.not_configured")
            self._show(MaintenanceView(Step.NOT_CONFIGURED))
            return
        until = self._locked_until()
        if until is not None:
            self._show(MaintenanceView(Step.LOCKED, locked_until=self._at(until)))
            return
        self._show(MaintenanceView(Step.PIN))

    def enter_pin(self, pin: str) -> bool:
        """Check ``pin`` (about a second by design); True opens the menu."""
        self.touch()
        if self._pin_check is None or not pin:
            return False
        until = self._locked_until()
        if until is not None:
            self.audit.record("maintenance.pin_refused", detail={"reason": "locked"})
            self._show(MaintenanceView(Step.LOCKED, locked_until=self._at(until)))
            return False
        if self.view.step is not Step.PIN:
            return False  # a second tap on OK while the first PIN is checked, or after
        self._show(MaintenanceView(Step.CHECKING))
        try:
            right = self._pin_check(pin)
        except Exception:  # scrypt refused its memory, say: not the technician's mistake
            log.exception("maintenance: the PIN could not be checked")
            self._show(MaintenanceView(Step.PIN))
            return False
        # Left while scrypt ran: a right PIN opens nothing, a wrong one still counts (leaving
        # the pad must not be a way around the lock).
        record = self.state.read()
        if right:
            if record.failures:
                self.state.write(replace(record, failures=0))
            opened = self._show_if_checking(MaintenanceView(
                Step.MENU, devices=self._device_lines(),
                out_of_service=self.out_of_service_message()))
            if opened:
                self.audit.record("maintenance.opened")
                log.info("maintenance mode opened")
                self.touch()
            return opened
        failures = record.failures + 1
        self.audit.record("maintenance.pin_failed", detail={"failures": failures})
        log.warning("maintenance: wrong PIN (%d of %d)", failures, self.settings.max_failures)
        if failures >= self.settings.max_failures:
            until = self._clock() + self.settings.lockout_s
            self.state.write(replace(record, failures=0, locked_until=until))
            self.audit.record("maintenance.locked",
                              detail={"failures": failures,
                                      "seconds": int(self.settings.lockout_s)})
            log.warning("maintenance: locked for %d s after %d wrong PINs",
                        self.settings.lockout_s, failures)
            self._show_if_checking(MaintenanceView(Step.LOCKED, locked_until=self._at(until)))
        else:
            self.state.write(replace(record, failures=failures))
            self._show_if_checking(MaintenanceView(
                Step.PIN, attempts_left=self.settings.max_failures - failures))
        self.touch()  # scrypt took its second: that is not the technician being idle
        return False

    def _show_if_checking(self, view: MaintenanceView) -> bool:
        with self._lock:  # reentrant: _show takes it again; close() cannot slip in between
            if self._view.step is not Step.CHECKING:
                return False
            self._show(view)
            return True

    # -- time ------------------------------------------------------------------------------------
    def touch(self) -> None:
        self._last_touch = self._idle_clock()

    def tick(self) -> None:
        """About once a second: a lock that ran out gives the pad back; an idle menu closes."""
        step = self.view.step
        if step is Step.LOCKED and self._locked_until() is None:
            self._show(MaintenanceView(Step.PIN))
        elif step in (Step.PIN, Step.MENU, Step.LOCKED, Step.NOT_CONFIGURED) \
                and self._idle_clock() - self._last_touch >= self.settings.idle_s:
            self.close("timeout")

    def close(self, reason: str = "exit") -> None:
        """Leave maintenance mode (``exit``, ``timeout``, ``restart``); a running self-test is
        cancelled."""
        with self._lock:
            if self._view.step is Step.CLOSED:
                return
            was_open = self._view.step is Step.MENU
            self._show(MaintenanceView(Step.CLOSED, closed_reason=reason))
            pending = self._pending
        if pending is not None:
            pending.cancel()
        if was_open:
            self.audit.record("maintenance.closed", detail={"reason": reason})

    def _await(self, command: PendingCommand[R]) -> CommandResult[R]:
        # As Flow._await, but a command started just as the menu closed is cancelled too:
        # close() and this agree under one lock on who cancels it.
        with self._lock:
            self._pending = command  # type: ignore[assignment]
            closed = self._view.step is not Step.MENU
        if closed:
            command.cancel()
        try:
            return command.wait()
        finally:
            with self._lock:
                self._pending = None

    # -- the menu ----------------------------------------------------------------------------
    def _in_menu(self) -> bool:
        if self.view.step is not Step.MENU:
            log.warning("maintenance: menu action refused outside the menu")
            return False
        return True

    def show_panel(self, panel: Panel) -> None:
        """Switch to ``panel`` and collect its figures (the network panel asks the back office,
        so this may take the client's timeout)."""
        if not self._in_menu():
            return
        self.touch()
        self._update(panel=panel)  # the panel shows at once; its figures follow
        if panel is Panel.DEVICES:
            self._update(devices=self._device_lines())
        elif panel is Panel.COUNTERS:
            self._update(counters=self.counters())
        elif panel is Panel.OUTBOX:
            self._update(outbox=self._outbox())
        elif panel is Panel.HELD:
            self._update(held=self.held_report())
        elif panel is Panel.NETWORK:
            self._update(network=None)  # "checking" until the back office has answered
            self._update(network=self.network())
        elif panel is Panel.SOFTWARE:
            self._update(software=self.software())
        elif panel is Panel.LOG:
            source, lines = self.log_lines()
            self._update(log_lines=lines, log_source=source)
        elif panel is Panel.SERVICE:
            self._update(out_of_service=self.out_of_service_message())

    def refresh_devices(self) -> None:
        """The device list again (states change while the technician watches)."""
        if self.view.step is Step.MENU:
            self._update(devices=self._device_lines())

    def _update(self, **changes: Any) -> None:
        """Change the menu's view, atomically: a panel filled on one thread and a self-test
        ending on another must not undo each other. Nothing once the menu closed (idle,
        exit): a late answer must not reopen it."""
        with self._lock:  # reentrant: _show takes it again
            if self._view.step is not Step.MENU:
                return
            self._show(replace(self._view, **changes))

    # devices ---------------------------------------------------------------------------------
    def _device_lines(self) -> tuple[DeviceLine, ...]:
        error_times: dict[str, datetime] = {}
        tz = self._now().tzinfo
        try:
            for entry in self.audit.recent(1000):
                if entry.kind == "device.Error" and entry.device_id:
                    error_times.setdefault(entry.device_id, entry.at.astimezone(tz))
        except Exception:  # the list must show even when the audit database does not answer
            log.exception("maintenance: audit log not readable")
        return tuple(_device_line(name, device, device.status(), error_times.get(name))
                     for name, device in self.devices.items())

    def self_test(self, name: str) -> SelfTestResult | None:
        """Run the self-test of device ``name``; its result is also in ``view.results``."""
        view = self.view
        if not self._in_menu() or view.testing is not None or view.reprinting is not None:
            return None
        device = self.devices.get(name)
        if device is None:
            return None
        self.touch()
        self._update(testing=name)
        try:
            result = self._run_test(name, device)
        except Exception as exc:  # a failing test is a result, never a crash of the menu
            log.exception("maintenance: self-test of %s failed", name)
            result = SelfTestResult(name, _test_kind(device), False,
                                    str(Completion.INTERNAL_ERROR), type(exc).__name__)
        result = replace(result, at=self._now())
        self.audit.record("maintenance.self_test", device_id=name,
                          detail={"test": str(result.test), "ok": result.ok,
                                  "completion": result.completion,
                                  "error": result.error_code or ""})
        self.touch()
        devices = self._device_lines()
        with self._lock:
            self._update(testing=None, results={**self._view.results, name: result},
                         devices=devices)
        return result

    def _run_test(self, name: str, device: Device) -> SelfTestResult:
        s = self.settings
        if isinstance(device, Printer):
            document = self.test_page(name, device)
            printed = self._await(device.print_document(document, s.print_timeout_s))
            if not printed.ok:
                return _failed(name, SelfTest.PRINT_PAGE, printed)
            pages = printed.data.pages if printed.data is not None else 0
            if pages:  # paper used like any other print: the pages counter includes it
                self.audit.record(PRINTED, device_id=name,
                                  detail={"kind": TEST_PAGE, "pages": pages, "duplicate": False,
                                          "attempt": 1})
            return SelfTestResult(name, SelfTest.PRINT_PAGE, True, str(printed.completion),
                                  detail={"pages": pages, "check": document.meta["check"]})
        if isinstance(device, IdentityReader):
            read = self._await(device.read_identity(s.read_timeout_s))
            if read.ok and read.data is not None:
                card = read.data
                detail: dict[str, str | int] = {"document_type": str(card.document_type),
                                                "number": mask_id(card.id_number)}
                del card  # the card's data goes no further than these two fields
                return SelfTestResult(name, SelfTest.READ_CARD, True, str(read.completion),
                                      detail=detail)
            if read.error_code == IdentityError.SECURITY_FAIL:
                # The chip answered and asked for its MRZ: the reader and the link work.
                return SelfTestResult(name, SelfTest.READ_CARD, True, str(read.completion),
                                      read.error_code, detail={"chip_answered": 1})
            return _failed(name, SelfTest.READ_CARD, read)
        if isinstance(device, Camera):
            shot = self._await(device.capture(s.capture_timeout_s))
            if not shot.ok or shot.data is None:
                return _failed(name, SelfTest.CAPTURE_FRAME, shot)
            width, height = shot.data.size
            return SelfTestResult(name, SelfTest.CAPTURE_FRAME, True, str(shot.completion),
                                  detail={"width": width, "height": height})
        if isinstance(device, BarcodeReader):
            scan = self._await(device.read(s.scan_timeout_s))
            if not scan.ok or scan.data is None:
                return _failed(name, SelfTest.SCAN_CODE, scan)
            return SelfTestResult(name, SelfTest.SCAN_CODE, True, str(scan.completion),
                                  detail={"characters": len(scan.data)})
        return SelfTestResult(name, SelfTest.NONE, False, str(Completion.UNSUPPORTED_COMMAND),
                              "noSelfTest")

    def test_page(self, name: str, printer: Printer) -> PrintDocument:
        check = secrets.token_hex(3).upper()
        templates = self._templates or print_templates()
        return templates.render(TEST_PAGE, {
            "centre_name": self.facts.centre_name, "kiosk_id": self.facts.kiosk_id,
            "device": name, "driver": printer.capabilities().driver,
            "version": self.facts.version, "printed_at": self._now(), "check": check,
        }, job_key=f"{TEST_PAGE}:{name}:{check}:{self._clock():.0f}", media=printer.media_kind)

    # documents kept for staff (待补打) -----------------------------------------------------------
    def held_report(self) -> HeldReport:
        if self._held is None:
            return HeldReport(kept=False)
        try:
            kept = self._held.list()
        except Exception as exc:  # a folder gone read-only must not take the menu with it
            log.exception("maintenance: documents kept for staff not readable")
            return HeldReport(problem=type(exc).__name__)
        tz = self._now().tzinfo
        return HeldReport(tuple(
            HeldLine(h.reference, h.kind, h.title, str(h.media), h.held_at.astimezone(tz),
                     h.expires_at.astimezone(tz), h.reason, self.printer_for(h.media))
            for h in kept))

    def printer_for(self, media: Media | str) -> str | None:
        """The device a document on ``media`` paper prints on, or None."""
        try:
            paper = Media(media)
        except ValueError:
            return None
        preferred = HELD_PRINTERS.get(paper)
        for name in ([preferred] if preferred else []) + list(self.devices):
            device = self.devices.get(name)
            if isinstance(device, Printer) and device.media_kind is paper:
                return name
        return None

    def _kept(self, reference: str) -> HeldSummary | None:
        assert self._held is not None
        return next((h for h in self._held.list() if h.reference == reference), None)

    def reprint_held(self, reference: str) -> HeldOutcome | None:
        """Print kept document ``reference`` on the printer for its paper and wait; the store
        drops it once it came out. Closing the menu does not cancel it: the technician stands
        at the printer waiting for the certificate, and a print cut off halfway is worse."""
        if not self._in_menu() or self._held is None:
            return None
        with self._lock:
            if self._view.reprinting is not None or self._view.testing is not None:
                return None
            self._update(reprinting=reference)
        self.touch()
        outcome = HeldOutcome(reference, "", "", HeldAction.REPRINT, False,
                              str(Completion.INTERNAL_ERROR), "internalError")
        try:
            outcome = self._reprint(reference)
            self.audit.record("maintenance.held_reprinted", device_id=outcome.printer,
                              detail={"reference": reference, "kind": outcome.kind,
                                      "ok": outcome.ok, "error": outcome.error or ""})
            if outcome.ok:
                log.info("maintenance: kept document %s reprinted", reference)
            else:
                log.warning("maintenance: kept document %s not reprinted (%s)", reference,
                            outcome.error)
        finally:  # whatever happened, the panel must not stay "printing"
            self.touch()  # the print took its time: that is not the technician being idle
            report = self.held_report()
            with self._lock:
                self._update(reprinting=None, held=report,
                             held_results={**self._view.held_results, reference: outcome})
        return outcome

    def _reprint(self, reference: str) -> HeldOutcome:
        assert self._held is not None
        try:
            kept = self._kept(reference)
        except Exception as exc:
            log.exception("maintenance: documents kept for staff not readable")
            return HeldOutcome(reference, "", "", HeldAction.REPRINT, False,
                               str(Completion.INTERNAL_ERROR), type(exc).__name__, at=self._now())
        if kept is None:  # expired, or discarded since the list was drawn
            return HeldOutcome(reference, "", "", HeldAction.REPRINT, False, error="notKept",
                               at=self._now())
        name = self.printer_for(kept.media)
        base = HeldOutcome(reference, kept.kind, kept.title, HeldAction.REPRINT, False,
                           printer=name, at=self._now())
        if name is None:
            return replace(base, completion=str(Completion.DEVICE_NOT_READY),
                           error=str(DeviceState.NO_DEVICE))
        printer = self.devices[name]
        assert isinstance(printer, Printer)
        try:
            result = self._held.reprint(reference, printer, self.settings.print_timeout_s)
        except Exception as exc:  # the file no longer opens (key changed, altered): say so
            log.exception("maintenance: kept document %s could not be reprinted", reference)
            return replace(base, completion=str(Completion.INTERNAL_ERROR),
                           error=type(exc).__name__, at=self._now())
        if not result.ok:
            return replace(base, completion=str(result.completion),
                           error=result.error_code or str(result.completion), at=self._now())
        pages = result.data.pages if result.data is not None else 0
        duplicate = result.data.duplicate if result.data is not None else False
        # Paper used like any other print, in the citizen's session's trail: the counters
        # count the certificate that finally came out.
        self.audit.record(PRINTED, session_id=kept.session_id, device_id=name,
                          detail={"kind": kept.kind, "pages": pages, "duplicate": duplicate,
                                  "reference": reference, "staff": True})
        return replace(base, ok=True, completion=str(result.completion), pages=pages,
                       duplicate=duplicate, at=self._now())

    def discard_held(self, reference: str) -> HeldOutcome | None:
        """Drop kept document ``reference`` (the citizen got it at a window, or will not)."""
        if not self._in_menu() or self._held is None or self.view.reprinting == reference:
            return None
        self.touch()
        try:
            kept = self._kept(reference)
            removed = kept is not None and self._held.remove(reference)
            error = None if removed else "notKept"
        except Exception as exc:
            log.exception("maintenance: kept document %s could not be discarded", reference)
            kept, removed, error = None, False, type(exc).__name__
        outcome = HeldOutcome(reference, kept.kind if kept else "", kept.title if kept else "",
                              HeldAction.DISCARD, removed, error=error, at=self._now())
        if removed:
            self.audit.record("maintenance.held_discarded",
                              detail={"reference": reference, "kind": outcome.kind})
            log.info("maintenance: kept document %s discarded", reference)
        report = self.held_report()
        with self._lock:
            self._update(held=report,
                         held_results={**self._view.held_results, reference: outcome})
        return outcome

    # counters --------------------------------------------------------------------------------
    def counters(self) -> CounterReport:
        midnight = self._now().replace(hour=0, minute=0, second=0, microsecond=0)
        return CounterReport(today=_counters(self._tally(midnight)),
                             total=_counters(self._tally(None)))

    # network and software ------------------------------------------------------------------
    def network(self) -> NetworkReport:
        try:
            interfaces, default_route = self._network()
        except Exception:
            log.exception("maintenance: network interfaces not readable")
            interfaces, default_route = (), False
        try:
            reachable = bool(self._health())
        except Exception:  # an unexpected client error is "not reachable" to a technician
            log.exception("maintenance: back-office health check failed")
            reachable = False
        return NetworkReport(interfaces, default_route, self.facts.backoffice_url, reachable)

    def software(self) -> SoftwareReport:
        python = ".".join(str(n) for n in sys.version_info[:3])
        for path in self.manifest_paths:
            entries, problem = read_manifest(path)
            if entries is not None or problem is not None:
                return SoftwareReport(self.facts.version, python, str(path), entries, problem)
        return SoftwareReport(self.facts.version, python,
                              ", ".join(str(p) for p in self.manifest_paths), None)

    def log_lines(self) -> tuple[str, tuple[str, ...]]:
        """(source, lines), newest last: the kiosk's journal when it can be read, else the
        audit log. Masked either way: the journal is text anyone's code wrote."""
        limit = self.settings.log_lines
        try:
            lines = self._journal(limit)
        except Exception:
            log.exception("maintenance: journal not readable")
            lines = None
        source = "journal"
        if not lines:
            source = "audit"
            tz = self._now().tzinfo
            lines = [_audit_line(entry, tz) for entry in reversed(self.audit.recent(limit))]
        return source, tuple(self._mask(line)[:240] for line in lines[-limit:])

    # service -------------------------------------------------------------------------------
    def take_out_of_service(self, message: str) -> None:
        if not self._in_menu() or not message.strip():
            return
        self.touch()
        record = self.state.read()
        self.state.write(replace(record, out_of_service=message.strip(),
                                 out_of_service_since=self._clock()))
        self.audit.record("maintenance.out_of_service", detail={"message": message.strip()})
        log.warning("kiosk taken out of service from maintenance mode")
        self._update(out_of_service=message.strip())

    def back_in_service(self) -> None:
        if not self._in_menu():
            return
        self.touch()
        record = self.state.read()
        if record.out_of_service is not None:
            self.state.write(replace(record, out_of_service=None, out_of_service_since=None))
            self.audit.record("maintenance.in_service")
            log.info("kiosk back in service from maintenance mode")
        self._update(out_of_service=None)

    def restart(self) -> None:
        """Restart the app: the process ends cleanly and systemd (Restart=always) starts it."""
        if not self._in_menu():
            return
        self.audit.record("maintenance.restart")
        log.warning("maintenance: app restart requested")
        self.close("restart")
        self._restart()


# --- helpers ----------------------------------------------------------------------------------


def _test_kind(device: Device) -> SelfTest:
    if isinstance(device, Printer):
        return SelfTest.PRINT_PAGE
    if isinstance(device, IdentityReader):
        return SelfTest.READ_CARD
    if isinstance(device, Camera):
        return SelfTest.CAPTURE_FRAME
    if isinstance(device, BarcodeReader):
        return SelfTest.SCAN_CODE
    return SelfTest.NONE


def _failed(name: str, test: SelfTest, result: CommandResult[Any]) -> SelfTestResult:
    return SelfTestResult(name, test, False, str(result.completion),
                          result.error_code or str(result.completion))


def _device_line(name: str, device: Device, status: DeviceStatus,
                 last_error_at: datetime | None) -> DeviceLine:
    error = (f"{status.last_error[0]}/{status.last_error[1]}"
             if status.last_error is not None else None)
    return DeviceLine(
        name=name, device_class=str(status.device_class), driver=device.capabilities().driver,
        state=str(status.state), usable=status.usable,
        paper=str(status.paper) if status.paper is not None else None,
        media=str(status.media) if status.media is not None else None,
        door=str(status.door) if status.door is not None else None,
        queue_depth=status.queue_depth,
        cameras=tuple(sorted((k, str(v)) for k, v in (status.cameras or {}).items())),
        last_error=error, last_error_at=last_error_at if error else None,
        test=_test_kind(device))


def _counters(tally: Tally) -> Counters:
    documents = tally.documents

    def of(kinds: frozenset[str]) -> int:
        return sum(n for kind, n in documents.items() if kind in kinds)

    return Counters(sessions=sum(tally.sessions.values()), tickets=of(TICKET_KINDS),
                    receipts=of(RECEIPT_KINDS), certificates=of(CERTIFICATE_KINDS),
                    pages=int(tally.pages))


def _audit_line(entry: AuditEntry, tz: Any) -> str:
    at = entry.at.astimezone(tz) if entry.at.tzinfo is not None else entry.at
    parts = [f"{at:%m-%d %H:%M:%S}", entry.kind]
    if entry.device_id:
        parts.append(entry.device_id)
    parts.extend(f"{k}={v}" for k, v in sorted(entry.detail.items()))
    return " ".join(parts)


def read_journal(limit: int) -> list[str] | None:
    """The kiosk unit's last ``limit`` journal lines, or None where there is no journal or the
    kiosk user may not read it (it needs the systemd-journal group)."""
    if shutil.which("journalctl") is None:
        return None
    try:
        done = subprocess.run(
            ["journalctl", "--unit", JOURNAL_UNIT, "--lines", str(limit), "--output",
             "short-iso", "--no-hostname", "--no-pager", "--quiet"],
            capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line for line in done.stdout.splitlines() if line and not line.startswith("-- ")]
    return lines if done.returncode == 0 and lines else None


def read_manifest(path: Path, limit: int = 24) -> tuple[tuple[tuple[str, str], ...] | None,
                                                       str | None]:
    """The image manifest's headline fields as (key, text) pairs. A ``.json`` file: scalars up
    to two levels deep, lists and tables by their size; any other file: ``KEY=VALUE`` lines
    (os-release style). (None, None) when there is no such file (not an appliance image);
    (None, problem) when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as bad:
        return None, type(bad).__name__
    if path.suffix != ".json":
        return _release_fields(text, limit)
    try:
        data = json.loads(text)
    except ValueError:
        return None, "not JSON"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    entries: list[tuple[str, str]] = []

    def add(key: str, value: object, depth: int) -> None:
        if isinstance(value, dict):
            if depth == 0:
                for k, v in value.items():
                    add(f"{key}.{k}", v, 1)
            else:
                entries.append((key, f"{len(value)} entries"))
        elif isinstance(value, list):
            entries.append((key, f"{len(value)} entries"))
        elif value is None or isinstance(value, bool | int | float | str):
            if isinstance(value, float) and not math.isfinite(value):
                value = str(value)
            entries.append((key, str(value)[:80]))

    for key, value in data.items():
        add(str(key), value, 0)
    return tuple(entries[:limit]), None


def _release_fields(text: str, limit: int) -> tuple[tuple[tuple[str, str], ...] | None,
                                                    str | None]:
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            return None, "not KEY=VALUE lines"
        entries.append((key.strip(), value.strip().strip("\"'")[:80]))
    return tuple(entries[:limit]), None


def probe_network() -> tuple[tuple[Interface, ...], bool]:
    """The interfaces other than loopback with their addresses, and whether there is a default
    route (Linux: /proc/net/route and /proc/net/ipv6_route)."""
    stats = psutil.net_if_stats()
    interfaces = []
    for name, addresses in sorted(psutil.net_if_addrs().items()):
        stat = stats.get(name)
        if name == "lo" or (stat is not None and "loopback" in getattr(stat, "flags", "")):
            continue
        shown = tuple(a.address.split("%")[0] for a in addresses
                      if a.family in (socket.AF_INET, socket.AF_INET6)
                      and not a.address.lower().startswith("fe80"))
        interfaces.append(Interface(name, bool(stat and stat.isup), shown))
    return tuple(interfaces), _default_route()


def _default_route() -> bool:
    try:
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & 0x1:
                return True
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/net/ipv6_route").read_text().splitlines():
            fields = line.split()
            if len(fields) == 10 and fields[0] == "0" * 32 and fields[1] == "00" \
                    and fields[9] != "lo":
                return True
    except OSError:
        pass
    return False


def lock_remaining(view: MaintenanceView, now: datetime) -> timedelta:
    """How long the PIN pad stays locked, for the screen's wording."""
    if view.locked_until is None:
        return timedelta(0)
    return max(timedelta(0), view.locked_until - now)


__all__ = [
    "IMAGE_MANIFEST",
    "IMAGE_RELEASE",
    "MANIFEST_PATHS",
    "PRINTED",
    "STATE_FILE",
    "CounterReport",
    "Counters",
    "DeviceLine",
    "HELD_PRINTERS",
    "HeldAction",
    "HeldDocuments",
    "HeldLine",
    "HeldOutcome",
    "HeldReport",
    "HeldSummary",
    "Interface",
    "KioskFacts",
    "MaintenanceFlow",
    "MaintenanceRecord",
    "MaintenanceSettings",
    "MaintenanceStateFile",
    "MaintenanceView",
    "NetworkReport",
    "OutboxReport",
    "Panel",
    "SelfTest",
    "SelfTestResult",
    "SoftwareReport",
    "Step",
    "lock_remaining",
    "read_journal",
    "read_manifest",
]
