"""What a device announced, collected for a test to wait on (events come from driver threads)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from devices.contract import Device, Event, EventKind


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class Events:
    def __init__(self, device: Device) -> None:
        self.items: list[Event] = []
        self._lock = threading.Lock()
        device.subscribe(self._add)

    def _add(self, event: Event) -> None:
        with self._lock:
            self.items.append(event)

    def of(self, kind: EventKind) -> list[Event]:
        with self._lock:
            return [e for e in self.items if e.kind is kind]

    def kinds(self) -> list[EventKind]:
        with self._lock:
            return [e.kind for e in self.items]

    def count(self, kind: EventKind) -> int:
        return len(self.of(kind))

    def wait(self, kind: EventKind, count: int = 1) -> bool:
        return wait_until(lambda: self.count(kind) >= count)
