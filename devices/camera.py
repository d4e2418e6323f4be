"""Cameras: a live frame for the preview (never queued) and a capture command."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devices.contract import CommandContext, Device, DeviceClass, PendingCommand


@dataclass(frozen=True, repr=False)
class Frame:
    """One BGR frame (H x W x 3, uint8). May show a face or a document: personal data."""

    image: np.ndarray
    sequence: int
    timestamp: float

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])

    def __repr__(self) -> str:
        return f"Frame(#{self.sequence}, {self.size[0]}x{self.size[1]})"


class Camera(Device):
    device_class = DeviceClass.CAMERA

    def latest_frame(self) -> Frame | None:
        """The newest frame, or None; for the preview, so it is not a queued command."""
        raise NotImplementedError

    def capture(self, timeout: float, session_id: str | None = None) -> PendingCommand[Frame]:
        """Take a still. ``noDevice`` / ``hardwareError`` when the camera is gone."""
        return self._start("capture", self._capture, timeout, session_id)

    def _capture(self, ctx: CommandContext) -> Frame:
        raise NotImplementedError
