"""What every citizen journey shares: a view that screens render, change notification, and
waiting on a device command without knowing which driver runs it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from devices.contract import CommandResult, PendingCommand

log = logging.getLogger(__name__)

V = TypeVar("V")
R = TypeVar("R")

Translate = Callable[[str], str]


class Flow(Generic[V]):
    """A journey as a state machine. Methods may block (device commands, HTTP); the UI calls
    them off its main loop and re-renders on ``on_change``. ``cancel`` may come from any
    thread and ends whatever the flow is waiting for."""

    def __init__(self, initial: V) -> None:
        self._view = initial
        self._lock = threading.RLock()
        self._listeners: list[Callable[[V], None]] = []
        self._pending: PendingCommand[object] | None = None
        self.busy_listeners: list[Callable[[bool], None]] = []

    @property
    def view(self) -> V:
        with self._lock:
            return self._view

    def on_change(self, listener: Callable[[V], None]) -> None:
        self._listeners.append(listener)

    def _show(self, view: V) -> None:
        with self._lock:
            self._view = view
        for listener in list(self._listeners):
            try:
                listener(view)
            except Exception:
                log.exception("view listener failed")

    def _await(self, command: PendingCommand[R]) -> CommandResult[R]:
        """Wait for a device command; cancellable through ``cancel``. Busy listeners let the
        session pause its inactivity countdown while a device works (DESIGN.md)."""
        with self._lock:
            self._pending = command  # type: ignore[assignment]
        for listener in self.busy_listeners:
            listener(True)
        try:
            return command.wait()
        finally:
            with self._lock:
                self._pending = None
            for listener in self.busy_listeners:
                listener(False)

    def cancel(self) -> None:
        with self._lock:
            pending = self._pending
        if pending is not None:
            pending.cancel()
