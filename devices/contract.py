"""The device-layer contract shared by every device class, real or simulated.

Vocabulary follows CEN XFS4IoT (states, completions, events) and IATA CUSS 2, so a log line
such as ``receipt_printer Error(paperOut, print)`` reads the same as in those standards.
Nothing here knows about the kiosk, the flows or Kivy.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long past its deadline a command body may take to notice before the command is ended
# for it (a driver blocked in a read that ignores its context).
_OVERDUE_GRACE_S = 1.0


class DeviceState(enum.StrEnum):
    STARTING = "starting"
    ONLINE = "online"
    OFFLINE = "offline"
    POWER_OFF = "powerOff"
    NO_DEVICE = "noDevice"
    HARDWARE_ERROR = "hardwareError"
    USER_ERROR = "userError"
    DEVICE_BUSY = "deviceBusy"


class MediaState(enum.StrEnum):
    UNKNOWN = "unknown"
    PRESENT = "present"
    NOT_PRESENT = "notPresent"
    JAMMED = "jammed"
    ENTERING = "entering"


class PaperState(enum.StrEnum):
    FULL = "full"
    LOW = "low"
    OUT = "out"
    JAMMED = "jammed"
    UNKNOWN = "unknown"


class DoorState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    UNKNOWN = "unknown"


class CameraState(enum.StrEnum):
    OK = "ok"
    INOPERATIVE = "inoperative"


class Severity(enum.StrEnum):
    NORMAL = "NORMAL"
    WARNING = "WARNING"
    ALARM = "ALARM"


class Completion(enum.StrEnum):
    """How a command ended. Exactly one per command; ``canceled`` is not ``timeOut``."""

    SUCCESS = "success"
    CANCELED = "canceled"
    TIME_OUT = "timeOut"
    DEVICE_NOT_READY = "deviceNotReady"
    HARDWARE_ERROR = "hardwareError"
    USER_ERROR = "userError"
    INVALID_DATA = "invalidData"
    UNSUPPORTED_COMMAND = "unsupportedCommand"
    INTERNAL_ERROR = "internalError"


class EventKind(enum.StrEnum):
    STATUS_CHANGED = "StatusChanged"
    ERROR = "Error"
    MEDIA_INSERTED = "MediaInserted"
    MEDIA_REMOVED = "MediaRemoved"
    INVALID_MEDIA = "InvalidMedia"
    PAPER_THRESHOLD = "PaperThreshold"
    MEDIA_TAKEN = "MediaTaken"
    DATA_READ = "DataRead"
    ATTACHED = "Attached"
    DETACHED = "Detached"


class DeviceClass(enum.StrEnum):
    ID_CARD_READER = "idCardReader"
    SMART_CARD_READER = "smartCardReader"
    CAMERA = "camera"
    BARCODE_READER = "barcodeReader"
    RECEIPT_PRINTER = "receiptPrinter"
    DOCUMENT_PRINTER = "documentPrinter"


@dataclass(frozen=True)
class DeviceStatus:
    """A snapshot; ``status()`` never waits behind a running command."""

    device_id: str
    device_class: DeviceClass
    state: DeviceState
    media: MediaState | None = None
    paper: PaperState | None = None
    door: DoorState | None = None
    queue_depth: int | None = None
    cameras: dict[str, CameraState] | None = None
    # Last error as (completion, device-specific code); kept for maintenance screens.
    last_error: tuple[Completion, str] | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """Whether a service depending on this device can be offered right now."""
        if self.state not in (DeviceState.ONLINE, DeviceState.DEVICE_BUSY):
            return False
        if self.paper in (PaperState.OUT, PaperState.JAMMED):
            return False
        if self.door is DoorState.OPEN:
            return False
        if self.cameras and all(c is CameraState.INOPERATIVE for c in self.cameras.values()):
            return False
        return True


@dataclass(frozen=True)
class Capabilities:
    device_class: DeviceClass
    driver: str
    model: str = ""
    features: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Event:
    kind: EventKind
    device_id: str
    sequence: int
    timestamp: float
    severity: Severity = Severity.NORMAL
    request_id: str | None = None
    session_id: str | None = None
    # Error events: kind is the device-specific error code, action what was being done.
    error_kind: str | None = None
    action: str | None = None
    # Never put personal data in payload of events that are logged; DataRead carries it only to
    # the subscriber and the audit log records the kind alone.
    payload: Any = None


@dataclass(frozen=True)
class CommandResult(Generic[T]):
    completion: Completion
    request_id: str
    error_code: str | None = None
    data: T | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.completion is Completion.SUCCESS


class CommandFailed(Exception):
    """Raised by a command body to end with a completion other than success."""

    def __init__(self, completion: Completion, error_code: str, message: str = "") -> None:
        super().__init__(f"{completion}/{error_code}: {message}" if message else f"{completion}/{error_code}")
        self.completion = completion
        self.error_code = error_code
        self.message = message


class CommandContext:
    """Handed to a running command body: how it learns it was cancelled or timed out."""

    def __init__(self, request_id: str, session_id: str | None, deadline: float) -> None:
        self.request_id = request_id
        self.session_id = session_id
        self.deadline = deadline
        self._stop = threading.Event()
        self.stop_reason: Completion | None = None

    def stop(self, reason: Completion) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set() or time.monotonic() >= self.deadline

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the command must stop now (cancel or deadline)."""
        self._stop.wait(min(seconds, self.remaining()))
        return self.stopped

    def check(self) -> None:
        """Raise the matching completion if the command must stop."""
        if self._stop.is_set():
            raise CommandFailed(self.stop_reason or Completion.CANCELED, "stopped")
        if time.monotonic() >= self.deadline:
            raise CommandFailed(Completion.TIME_OUT, "timeOut")


class PendingCommand(Generic[T]):
    """A running command: wait for its single completion or cancel it."""

    def __init__(self, name: str, ctx: CommandContext) -> None:
        self.name = name
        self.request_id = ctx.request_id
        self._ctx = ctx
        self._done = threading.Event()
        self._result: CommandResult[T] | None = None
        self._finish_lock = threading.Lock()
        self._on_done: Callable[[], None] = lambda: None

    def _finish(self, result: CommandResult[T]) -> None:
        with self._finish_lock:
            if self._result is not None:
                return
            self._result = result
        self._done.set()
        self._on_done()

    def cancel(self) -> None:
        self._ctx.stop(Completion.CANCELED)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> CommandResult[T]:
        """Block until the command completes (its own timeout always ends it)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.name} still running")
        assert self._result is not None
        return self._result


Listener = Callable[[Event], None]


class Device:
    """Base of every driver: status snapshot, capabilities, event stream, serialized commands.

    A driver subclasses a device-class contract (``IdCardReader``, ``ReceiptPrinter`` ...) and
    implements its command bodies; this class gives every one of them the same timeout, cancel,
    one-at-a-time and single-completion behaviour.
    """

    device_class: DeviceClass
    driver_name: str = "abstract"

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self._seq = itertools.count(1)
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._status = DeviceStatus(device_id, self.device_class, DeviceState.STARTING)
        self._command_lock = threading.Lock()
        self._current: PendingCommand[Any] | None = None
        self.session_id: str | None = None

    # -- status ---------------------------------------------------------------------------
    def status(self) -> DeviceStatus:
        with self._status_lock:
            return self._status

    def capabilities(self) -> Capabilities:
        return Capabilities(self.device_class, self.driver_name)

    def _set_status(self, **changes: Any) -> None:
        with self._status_lock:
            before = self._status
            after = replace(before, **changes)
            self._status = after
        if after != before and _observable(before) != _observable(after):
            self._emit(EventKind.STATUS_CHANGED, payload=after)

    # -- events ---------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it. Listeners run on the device's
        thread and must return quickly (the UI re-posts to its own loop)."""
        with self._listeners_lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._listeners_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _emit(
        self,
        kind: EventKind,
        *,
        severity: Severity = Severity.NORMAL,
        request_id: str | None = None,
        error_kind: str | None = None,
        action: str | None = None,
        payload: Any = None,
    ) -> Event:
        event = Event(
            kind=kind,
            device_id=self.device_id,
            sequence=next(self._seq),
            timestamp=time.time(),
            severity=severity,
            request_id=request_id,
            session_id=self.session_id,
            error_kind=error_kind,
            action=action,
            payload=payload,
        )
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not take the device down
                log.exception("listener failed on %s %s", self.device_id, kind)
        return event

    # -- commands -------------------------------------------------------------------------
    def _start(
        self,
        name: str,
        body: Callable[[CommandContext], T],
        timeout: float,
        session_id: str | None = None,
    ) -> PendingCommand[T]:
        """Run ``body`` as a command on this device's worker thread.

        Commands on one device run one at a time: a second command waits for the first, and
        its own timeout counts from when it was asked for, as a citizen experiences it.
        """
        ctx = CommandContext(uuid.uuid4().hex[:12], session_id or self.session_id,
                             time.monotonic() + timeout)
        pending: PendingCommand[T] = PendingCommand(name, ctx)

        def run() -> None:
            acquired = False
            try:
                while not (acquired := self._command_lock.acquire(timeout=0.05)):
                    ctx.check()
                self._current = pending
                ctx.check()
                # Data returned means the device did the work (a ticket came out): that is a
                # success even if a cancel arrived meanwhile; bodies raise via ctx.check().
                data = body(ctx)
                pending._finish(CommandResult(Completion.SUCCESS, ctx.request_id, data=data))
            except CommandFailed as failure:
                result = CommandResult[T](failure.completion, ctx.request_id,
                                          failure.error_code, message=failure.message)
                if failure.completion not in (Completion.SUCCESS, Completion.CANCELED,
                                              Completion.TIME_OUT):
                    self._set_status(last_error=(failure.completion, failure.error_code))
                    self._emit(EventKind.ERROR, severity=Severity.WARNING,
                               request_id=ctx.request_id, error_kind=failure.error_code,
                               action=name)
                pending._finish(result)
            except Exception as exc:  # a driver bug ends the command, never the kiosk
                log.exception("%s.%s failed", self.device_id, name)
                self._set_status(last_error=(Completion.INTERNAL_ERROR, type(exc).__name__))
                pending._finish(CommandResult(Completion.INTERNAL_ERROR, ctx.request_id,
                                              type(exc).__name__, message=str(exc)))
            finally:
                if acquired:
                    self._current = None
                    self._command_lock.release()

        threading.Thread(target=run, name=f"{self.device_id}:{name}", daemon=True).start()

        def overdue() -> None:
            # A body stuck in I/O past its deadline still gets exactly one completion; the device
            # stays locked until the body returns, so the next command waits or times out.
            ctx.stop(Completion.TIME_OUT)
            pending._finish(CommandResult(Completion.TIME_OUT, ctx.request_id, "timeOut",
                                          message="device did not answer in time"))

        watchdog = threading.Timer(timeout + _OVERDUE_GRACE_S, overdue)
        watchdog.daemon = True
        watchdog.start()
        pending._on_done = watchdog.cancel
        return pending

    def cancel(self) -> None:
        """Cancel the command that is running now, if any."""
        current = self._current
        if current is not None:
            current.cancel()

    def close(self) -> None:
        """Release the device (ports, threads). Drivers extend this."""
        self.cancel()


def _observable(status: DeviceStatus) -> tuple[Any, ...]:
    """What a StatusChanged event is about (last_error and detail alone do not raise one)."""
    return (status.state, status.media, status.paper, status.door, status.queue_depth,
            status.cameras)
