"""The kiosk's heartbeat: a small thread that every ``interval_s`` takes a snapshot through a
callable and posts it to the back office, so staff see each kiosk's devices and outbox.

It never raises into its owner: a failing snapshot or an unreachable back office is logged
(without personal data: a heartbeat holds none) and counted, and the next beat tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from kiosk.client import HeartbeatReport

log = logging.getLogger("kiosk.heartbeat")


class HeartbeatClient(Protocol):
    def heartbeat(self, kiosk_id: str, report: HeartbeatReport) -> dt.datetime: ...


class HeartbeatSender:
    """Posts ``snapshot()`` with ``client.heartbeat(kiosk_id, ...)`` every ``interval_s``,
    the first at once. ``start()``/``stop()``; ``beat_now()`` sends one on the caller's thread
    (tests, and right after a device changes state)."""

    def __init__(self, client: HeartbeatClient, kiosk_id: str,
                 snapshot: Callable[[], HeartbeatReport], interval_s: float = 60.0,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._client = client
        self._kiosk_id = kiosk_id
        self._snapshot = snapshot
        self.interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.last_acknowledged: dt.datetime | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def beat_now(self) -> bool:
        """Send one heartbeat; True if the back office acknowledged it. Never raises."""
        with self._lock:  # one at a time, whichever thread asks
            try:
                report = self._snapshot()
                if report.sent_at is None:
                    report = replace(report, sent_at=self._clock())
                received = self._client.heartbeat(self._kiosk_id, report)
            except Exception as exc:  # noqa: BLE001 - a heartbeat must never take the kiosk down
                self.failed += 1
                self.last_error = f"{type(exc).__name__}: {getattr(exc, 'code', '')}".rstrip(": ")
                log.warning("heartbeat failed (%s)", self.last_error)
                return False
            self.sent += 1
            self.last_acknowledged = received
            self.last_error = None
            return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat_now()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> HeartbeatSender:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
