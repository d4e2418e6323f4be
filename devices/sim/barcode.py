from __future__ import annotations

import queue
import time

from devices.barcode import MAX_PAYLOAD_CHARS, BarcodeReader
from devices.contract import (
    CommandContext,
    CommandFailed,
    Completion,
    EventKind,
    Severity,
)
from devices.sim.base import SimulatedDevice

# A code shown long before anyone asked for it belongs to somebody else.
STALE_AFTER_S = 10.0


class SimBarcodeReader(SimulatedDevice, BarcodeReader):
    def __init__(self, device_id: str = "barcode") -> None:
        super().__init__(device_id)
        self._shown: queue.Queue[tuple[float, str | None]] = queue.Queue()

    # -- script ---------------------------------------------------------------------------
    def show(self, payload: str) -> None:
        """Hold a code in front of the scanner."""
        self._shown.put((time.monotonic(), payload))

    def show_unreadable(self) -> None:
        """Something that is not a readable code (a damaged print, a phone at full glare)."""
        self._shown.put((time.monotonic(), None))

    # -- contract -------------------------------------------------------------------------
    def _read(self, ctx: CommandContext) -> str:
        self._require_online()
        while True:
            ctx.check()
            self._require_online()
            try:
                shown_at, payload = self._shown.get(timeout=min(0.05, ctx.remaining() or 0.01))
            except queue.Empty:
                continue
            if time.monotonic() - shown_at > STALE_AFTER_S:
                continue
            if payload is None:
                self._emit(EventKind.INVALID_MEDIA, severity=Severity.WARNING,
                           request_id=ctx.request_id)
                continue
            if len(payload) > MAX_PAYLOAD_CHARS:
                raise CommandFailed(Completion.INVALID_DATA, "invalidMedia",
                                    f"payload of {len(payload)} characters")
            self._emit(EventKind.DATA_READ, request_id=ctx.request_id, payload=payload)
            return payload
