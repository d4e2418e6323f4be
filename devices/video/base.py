"""What the opencv and replay drivers share: a ``Camera`` fed by a ``FrameGrabber``.

Status follows the frames, not the open call: ``online`` with ``cameras {"main": ok}`` once a
frame has arrived, ``noDevice`` with ``{"main": inoperative}`` when the source cannot be
opened or stops giving frames (``Detached`` if it had been online), ``online`` again and
``Attached`` when frames flow after a reopen. ``status().detail`` carries the live figures the
maintenance screen and the bench read:

``source``      what is being read ("/dev/video0", a file path)
``fps``         frames per second delivered lately (0.0 when none come)
``frames``      frames delivered since the start (the newest frame's sequence number)
``frameSize``   "WxH" of the newest frame, "" before the first
``ended``       a recording played once has reached its end (replay, ``loop = false``)

``capture`` errors:

======================================  ==============  ==========
situation                               completion      error code
======================================  ==============  ==========
source gone (unplugged, file missing)   deviceNotReady  noDevice
camera closed                           deviceNotReady  offline
no frame yet before the deadline        timeOut         timeOut
cancelled                               canceled        stopped
======================================  ==============  ==========
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from devices.camera import Camera, Frame
from devices.contract import (
    CameraState,
    CommandContext,
    CommandFailed,
    Completion,
    DeviceState,
    DeviceStatus,
    EventKind,
    Severity,
)
from devices.video.grabber import FrameGrabber, FrameSource

# How often a capture waiting for the first frame looks at the device state.
_WAIT_SLICE_S = 0.05


class GrabbingCamera(Camera):
    def __init__(self, device_id: str, source: FrameSource, reconnect_interval_s: float) -> None:
        super().__init__(device_id)
        self._source = source
        self._closed = threading.Event()
        self._grabber = FrameGrabber(
            source, name=f"{device_id}:grab", reconnect_interval_s=reconnect_interval_s,
            on_running=self._frames_flowing, on_lost=self._frames_lost)
        self._grabber.start()

    # -- contract -------------------------------------------------------------------------
    def status(self) -> DeviceStatus:
        snapshot = super().status()
        return replace(snapshot, detail={**snapshot.detail, **self._live_detail()})

    def latest_frame(self) -> Frame | None:
        return self._grabber.latest()

    def wait_for_frame(self, after: int = 0, timeout: float = 1.0) -> Frame | None:
        """The newest frame once its sequence is above ``after`` (None after ``timeout``):
        for a decoder that wants each new frame once instead of polling ``latest_frame``."""
        return self._grabber.wait_for_frame(after, timeout)

    @property
    def delivered_fps(self) -> float:
        """Frames per second delivered lately; what the bench reads."""
        return self._grabber.fps

    def close(self) -> None:
        """Stop the capture thread and release the camera."""
        super().close()
        self._closed.set()
        self._grabber.stop()
        self._set_status(state=DeviceState.OFFLINE)

    def _capture(self, ctx: CommandContext) -> Frame:
        while True:
            self._require_ready()
            frame = self._grabber.wait_for_frame(0, min(_WAIT_SLICE_S, ctx.remaining()))
            if frame is not None:
                return frame
            ctx.check()

    # -- helpers for the drivers ----------------------------------------------------------
    def _source_detail(self) -> dict[str, Any]:
        """Driver-specific figures for ``status().detail``."""
        return {}

    # -- grabber callbacks (grabber thread) -----------------------------------------------
    def _frames_flowing(self) -> None:
        if self._closed.is_set():
            return
        if super().status().state is DeviceState.NO_DEVICE:
            self._emit(EventKind.ATTACHED)
        self._set_status(state=DeviceState.ONLINE, cameras={"main": CameraState.OK})

    def _frames_lost(self, reason: str) -> None:
        if self._closed.is_set():
            return
        before = super().status().state
        self._set_status(state=DeviceState.NO_DEVICE, cameras={"main": CameraState.INOPERATIVE})
        if before is not DeviceState.STARTING:  # never there is not a detach
            self._emit(EventKind.DETACHED, severity=Severity.WARNING)

    # -- internals ------------------------------------------------------------------------
    def _require_ready(self) -> None:
        state = super().status().state
        if state in (DeviceState.ONLINE, DeviceState.STARTING, DeviceState.DEVICE_BUSY):
            return
        if state is DeviceState.NO_DEVICE:
            raise CommandFailed(Completion.DEVICE_NOT_READY, "noDevice",
                                f"no frames from {self._source.description}")
        raise CommandFailed(Completion.DEVICE_NOT_READY, str(state), f"camera is {state}")

    def _live_detail(self) -> dict[str, Any]:
        frame = self._grabber.latest()
        return {
            "source": self._source.description,
            "fps": round(self._grabber.fps, 1),
            "frames": self._grabber.frames,
            "frameSize": f"{frame.size[0]}x{frame.size[1]}" if frame is not None else "",
            "ended": self._grabber.ended,
            **self._source_detail(),
        }
