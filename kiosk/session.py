"""One citizen, one session: its id threads through UI, device events, storage and the back
office; its end drops every piece of personal data it held (DESIGN.md)."""

from __future__ import annotations

import enum
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flows.ports import AuditSink

log = logging.getLogger(__name__)


class EndReason(enum.StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"


@dataclass
class Session:
    id: str
    started_at: float
    temp_dir: Path
    _wipers: list[Callable[[], None]] = field(default_factory=list)

    def on_end(self, wipe: Callable[[], None]) -> None:
        """Register what must be forgotten when the session ends (flow state, card data)."""
        self._wipers.append(wipe)


@dataclass(frozen=True)
class IdleState:
    countdown: int | None  # seconds left on the visible countdown, None while not counting
    expired: bool


class InactivityTimer:
    """Idle for ``idle_s`` starts a visible ``countdown_s`` countdown; a touch resets it; a
    running device command pauses it (a slow card read must not end the session)."""

    def __init__(self, idle_s: float, countdown_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s, self.countdown_s, self.clock = idle_s, countdown_s, clock
        self._last = clock()
        self._paused_at: float | None = None

    def touch(self) -> None:
        self._last = self.clock()

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = self.clock()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._last += self.clock() - self._paused_at
            self._paused_at = None

    def state(self) -> IdleState:
        now = self._paused_at if self._paused_at is not None else self.clock()
        idle = now - self._last
        if idle < self.idle_s:
            return IdleState(None, False)
        left = self.idle_s + self.countdown_s - idle
        if left <= 0:
            return IdleState(0, True)
        return IdleState(int(left + 0.999), False)


class SessionManager:
    def __init__(self, temp_root: Path, audit: AuditSink, idle_s: float, countdown_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.temp_root = temp_root
        self.audit = audit
        self.idle_s, self.countdown_s, self.clock = idle_s, countdown_s, clock
        self.current: Session | None = None
        self.timer: InactivityTimer | None = None
        self._end_listeners: list[Callable[[Session, EndReason], None]] = []
        self._busy = 0

    def on_end(self, listener: Callable[[Session, EndReason], None]) -> None:
        self._end_listeners.append(listener)

    def start(self) -> Session:
        if self.current is not None:
            self.end(EndReason.CANCELLED)
        sid = uuid.uuid4().hex
        temp_dir = self.temp_root / sid
        temp_dir.mkdir(parents=True, mode=0o700)
        self.current = Session(sid, time.time(), temp_dir)
        self.timer = InactivityTimer(self.idle_s, self.countdown_s, self.clock)
        self._busy = 0
        self.audit.record("session.start", session_id=sid)
        return self.current

    def touch(self) -> None:
        if self.timer is not None:
            self.timer.touch()

    def device_busy(self, busy: bool) -> None:
        if self.timer is None:
            return
        self._busy = max(0, self._busy + (1 if busy else -1))
        if self._busy:
            self.timer.pause()
        else:
            self.timer.resume()

    def tick(self) -> IdleState:
        """Called by the UI about twice a second; ends the session when the countdown runs out."""
        if self.timer is None:
            return IdleState(None, False)
        state = self.timer.state()
        if state.expired:
            self.end(EndReason.TIMEOUT)
        return state

    def end(self, reason: EndReason) -> None:
        session, self.current, self.timer = self.current, None, None
        if session is None:
            return
        for wipe in reversed(session._wipers):
            try:
                wipe()
            except Exception:  # one failing wiper must not keep the others from running
                log.exception("session wipe failed")
        session._wipers.clear()
        shutil.rmtree(session.temp_dir, ignore_errors=True)
        self.audit.record("session.end", session_id=session.id, detail={"reason": str(reason)})
        for listener in list(self._end_listeners):
            listener(session, reason)

    def wipe_leftovers(self) -> int:
        """At start-up: remove temp folders a crash or power cut left behind."""
        if not self.temp_root.exists():
            return 0
        left = [p for p in self.temp_root.iterdir() if p.is_dir()]
        for path in left:
            shutil.rmtree(path, ignore_errors=True)
        return len(left)
