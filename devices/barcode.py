"""Barcode/QR readers: a hardware scanner, or a camera with a decoder behind it."""

from __future__ import annotations

from devices.contract import CommandContext, Device, DeviceClass, PendingCommand

# A QR payload longer than this is not ours; refusing it early keeps a hostile code small.
MAX_PAYLOAD_CHARS = 2048


class BarcodeReader(Device):
    device_class = DeviceClass.BARCODE_READER

    def read(self, timeout: float, session_id: str | None = None) -> PendingCommand[str]:
        """Wait for one code and return its text. ``timeOut`` if none is shown in time,
        ``canceled`` when the citizen leaves, ``invalidData``/``invalidMedia`` for an
        unreadable or oversized payload."""
        return self._start("read", self._read, timeout, session_id)

    def _read(self, ctx: CommandContext) -> str:
        raise NotImplementedError
