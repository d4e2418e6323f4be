"""A barcode reader that is a camera with the QR pipeline behind it (driver name ``camera``).

The reader never owns the camera: it looks at ``latest_frame()``, the same newest frame the
preview shows, and decodes on its command's worker thread, so a slow frame delays the next read
and never the preview. Frames that arrive while one is being decoded are skipped, not queued,
and decoding takes at most DECODE_SHARE of a core, so on a busy machine it is the decode rate
that drops, not the preview's. Its status follows the camera's: no camera, no reader.
"""

from __future__ import annotations

import time

from devices.barcode import BarcodeReader
from devices.camera import Camera
from devices.contract import (
    Capabilities,
    CommandContext,
    CommandFailed,
    Completion,
    DeviceState,
    DeviceStatus,
    Event,
    EventKind,
    Severity,
)
from devices.qr.pipeline import QrPipeline

# How often to look for a new frame when none has arrived: well under a frame at 30 fps.
POLL_S = 0.005
# Share of one core decoding may take: after a frame that took t to decode, the reader rests
# t * (1 - share) / share before the next. On the kiosk's 2 cores the camera's MJPG decoding
# and the preview need the rest; a frame without a code costs the pipeline several times what
# a frame it reads at once does, and a busy machine costs everything more.
DECODE_SHARE = 0.5


def make_pipeline(name: str) -> QrPipeline:
    """``pipeline`` (zxing-cpp with this project's second tries), or a bare backend name
    (``zxing``, ``pyzbar``) read with voting only."""
    if name == "pipeline":
        return QrPipeline()
    return QrPipeline(name, enhance=False)


class CameraQrReader(BarcodeReader):
    driver_name = "camera"

    def __init__(self, camera: Camera, pipeline: QrPipeline | str = "pipeline",
                 device_id: str = "barcode", decode_share: float = DECODE_SHARE) -> None:
        super().__init__(device_id)
        if not 0 < decode_share <= 1:
            raise ValueError("decode_share must be in (0, 1]")
        self.camera = camera
        self._rest_per_busy = (1 - decode_share) / decode_share
        self.pipeline = make_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
        self._unsubscribe = camera.subscribe(self._on_camera_event)
        self._mirror(camera.status())

    def capabilities(self) -> Capabilities:
        return Capabilities(self.device_class, self.driver_name,
                            model=f"{self.camera.device_id} + {self.pipeline.decoder.name}",
                            features=frozenset({"qr"}))

    # -- following the camera ----------------------------------------------------------------
    def _on_camera_event(self, event: Event) -> None:
        if event.kind is EventKind.STATUS_CHANGED and isinstance(event.payload, DeviceStatus):
            self._mirror(event.payload)
        elif event.kind is EventKind.DETACHED:
            self._emit(EventKind.DETACHED, severity=Severity.WARNING)
        elif event.kind is EventKind.ATTACHED:
            self._emit(EventKind.ATTACHED)

    def _mirror(self, status: DeviceStatus) -> None:
        # The cameras' ok/inoperative travel along, so ``usable`` says what the camera's says.
        self._set_status(state=_reader_state(status.state), cameras=status.cameras)

    def _require_camera(self) -> None:
        # Asked of the camera itself, not of the mirrored status, which lags by one event.
        state = _reader_state(self.camera.status().state)
        if state is not DeviceState.ONLINE:
            raise CommandFailed(Completion.DEVICE_NOT_READY, str(state))

    # -- contract ----------------------------------------------------------------------------
    def _read(self, ctx: CommandContext) -> str:
        self._require_camera()
        self.pipeline.reset()  # votes from an earlier read belong to an earlier citizen
        last_sequence: int | None = None
        while True:
            ctx.check()
            self._require_camera()
            frame = self.camera.latest_frame()
            if frame is None or frame.sequence == last_sequence:
                ctx.wait(POLL_S)
                continue
            last_sequence = frame.sequence
            started = time.perf_counter()
            payload = self.pipeline.feed(frame.image)
            if payload is not None:
                self._emit(EventKind.DATA_READ, request_id=ctx.request_id, payload=payload)
                return payload
            ctx.wait((time.perf_counter() - started) * self._rest_per_busy)

    def close(self) -> None:
        self._unsubscribe()
        super().close()


def _reader_state(camera: DeviceState) -> DeviceState:
    # A still being taken does not stop frames: the camera busy is the reader available.
    return DeviceState.ONLINE if camera is DeviceState.DEVICE_BUSY else camera
