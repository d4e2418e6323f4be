from __future__ import annotations

import threading
import time

import numpy as np

from devices.camera import Camera, Frame
from devices.contract import CameraState, CommandContext, CommandFailed, Completion, DeviceState
from devices.sim.base import SimulatedDevice


class SimCamera(SimulatedDevice, Camera):
    """Plays a scripted scene at a fixed rate with latest-frame semantics.

    The scene is any BGR image (``show_image``), so a test can show exactly what it wants to
    decode; ``show_qr``, ``show_document`` and ``show_passport`` render the usual ones: a code
    on a phone held at an angle, a page on the desk, a passport's data page.
    """

    def __init__(self, device_id: str = "camera", width: int = 640, height: int = 480,
                 fps: float = 15.0, demo_documents: list[str] | tuple[str, ...] = (),
                 demo_period_s: float = 4.0) -> None:
        """``demo_documents`` (paper kinds, e.g. ``["a4", "id1"]``): for ``make run``, the
        camera shows each kind of page in turn, ``demo_period_s`` each, with an empty desk
        between, so a tester can photograph any material without a script."""
        super().__init__(device_id)
        self.width, self.height, self.fps = width, height, fps
        self._scene = np.full((height, width, 3), 200, np.uint8)
        self._latest: Frame | None = None
        self._frame_seq = 0
        self._lock = threading.Lock()
        self._running = True
        self._set_status(cameras={"main": CameraState.OK})
        self._thread = threading.Thread(target=self._produce, name=f"{device_id}:frames",
                                        daemon=True)
        self._thread.start()
        self._demo: threading.Thread | None = None
        if demo_documents:
            kinds = list(demo_documents)
            self._demo = threading.Thread(target=self._cycle, args=(kinds, demo_period_s),
                                          name=f"{device_id}:demo", daemon=True)
            self._demo.start()

    def _cycle(self, kinds: list[str], period_s: float) -> None:
        n = 0
        while self._running:
            kind = kinds[n % len(kinds)]
            self.show_document("well_placed", kind, seed=n)
            time.sleep(period_s)
            self.show_document("no_document", kind, seed=n)
            time.sleep(period_s / 2)
            n += 1

    # -- script ---------------------------------------------------------------------------
    def show_image(self, image: np.ndarray) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError("scene must be an H x W x 3 uint8 BGR image")
        with self._lock:
            self._scene = image.copy()

    def show_qr(self, payload: str, condition: str = "perspective", seed: int = 0) -> None:
        """A QR code under ``condition`` (devices.sim.qr_scenes.CONDITIONS)."""
        from devices.sim.qr_scenes import qr_scene

        self.show_image(qr_scene(payload, condition, np.random.default_rng(seed),
                                 (self.width, self.height)))

    def show_document(self, variant: str = "well_placed", kind: str = "a4",
                      seed: int = 0) -> None:
        """A page on the desk: ``variant`` of devices.sim.document_scenes.SceneVariant
        (well placed, too small, corner out, blurred, glare, dark, no document)."""
        from devices.sim.document_scenes import SceneVariant, render_scene
        from devices.vision.document import PaperKind

        scene = render_scene(SceneVariant(variant), PaperKind(kind), seed=seed,
                             size=(self.width, self.height))
        self.show_image(scene.image)

    def show_passport(self, mrz_text: str, seed: int = 0) -> None:
        """A passport or permit data page whose MRZ is ``mrz_text`` (two or three lines)."""
        from devices.emrtd.mrz import parse_mrz
        from devices.sim.mrz_scenes import mrz_scene

        self.show_image(mrz_scene(parse_mrz(mrz_text), seed).image)

    def drop(self) -> None:
        """The camera stops delivering (cable, driver crash)."""
        self._set_status(cameras={"main": CameraState.INOPERATIVE})
        self.detach()
        with self._lock:
            self._latest = None

    def restore(self) -> None:
        self._set_status(cameras={"main": CameraState.OK})
        self.attach()

    # -- contract -------------------------------------------------------------------------
    def _produce(self) -> None:
        period = 1.0 / self.fps
        while self._running:
            if self.status().state is DeviceState.ONLINE:
                with self._lock:
                    scene = self._scene
                    self._frame_seq += 1
                    seq = self._frame_seq
                frame = scene.copy()
                # A moving bar, so a frozen preview is visible as frozen.
                x = (seq * 8) % frame.shape[1]
                frame[-6:, max(0, x - 40):x] = (0, 128, 255)
                with self._lock:
                    self._latest = Frame(frame, seq, time.time())
            time.sleep(period)

    def latest_frame(self) -> Frame | None:
        with self._lock:
            return self._latest

    def _capture(self, ctx: CommandContext) -> Frame:
        self._require_online()
        while (frame := self.latest_frame()) is None:
            if ctx.wait(0.02):
                ctx.check()
            self._require_online()
        if self.status().cameras == {"main": CameraState.INOPERATIVE}:
            raise CommandFailed(Completion.HARDWARE_ERROR, "cameraInoperative")
        return frame

    def close(self) -> None:
        self._running = False
        super().close()
