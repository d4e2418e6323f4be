"""A USB/V4L2 camera through OpenCV (driver ``"opencv"``).

Settings (config ``[devices.camera]``):

``device``                index (0 → /dev/video0) or a path. Prefer the stable
                          /dev/v4l/by-id/... link: an index can change when the camera is
                          replugged. A regular file (a recorded video) is read as if it were
                          the camera, looping and paced at ``fps``: that is how the tests run
                          this driver where no /dev/video* exists.
``width``, ``height``     requested resolution (default 1280 x 720)
``fps``                   requested frame rate (default 30)
``fourcc``                requested pixel format (default "MJPG": a USB 2 camera sends
                          1280 x 720 at 30 fps only compressed; raw YUYV gets ~10 fps);
                          "" keeps the camera's own
``reconnect_interval_s``  how often a missing camera is looked for again (default 2)

The camera may give another mode than requested; what it gives is in ``status().detail``
(``negotiated``) and logged once. Reconnect: when reads fail or the device node disappears the
camera goes ``noDevice`` (``Detached``), the node is looked for every
``reconnect_interval_s``, and frames flowing again make it ``online`` (``Attached``). Status
and ``capture`` errors as in ``devices.video.base``.
"""

from __future__ import annotations

import logging
import os
import stat
from typing import Any

import cv2
import numpy as np

from devices.contract import Capabilities
from devices.video.base import GrabbingCamera
from devices.video.options import positive_int, positive_number

log = logging.getLogger(__name__)

# A camera that stops sending without vanishing (a hung USB hub) is noticed after this long
# instead of V4L2's default 10 s select timeout.
_READ_TIMEOUT_MS = 2000


class OpencvSource:
    """A V4L2 device (or a video file standing in for one) read with ``cv2.VideoCapture``."""

    def __init__(self, device: int | str, width: int, height: int, fps: float,
                 fourcc: str) -> None:
        self.device = device
        self.description = f"/dev/video{device}" if isinstance(device, int) else device
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self.pace_fps: float | None = None
        self.negotiated = ""
        self._capture: cv2.VideoCapture | None = None
        self._is_file = False

    @property
    def requested(self) -> str:
        return f"{self.width}x{self.height}@{self.fps:g} {self.fourcc or 'default'}"

    def open(self) -> bool:
        self.close()
        try:
            mode = os.stat(self.description).st_mode
        except OSError:
            return False  # not plugged in; cv2 would only print a warning about it
        if stat.S_ISCHR(mode):
            capture = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
            self._is_file, self.pace_fps = False, None
            if capture.isOpened():
                self._configure(capture)
        elif stat.S_ISREG(mode):
            capture = cv2.VideoCapture(self.description, cv2.CAP_FFMPEG)
            self._is_file, self.pace_fps = True, self.fps
        else:
            return False
        if not capture.isOpened():
            capture.release()
            return False
        self._capture = capture
        return True

    def read(self) -> np.ndarray | None:
        capture = self._capture
        if capture is None:
            return None
        # A V4L2 read on an unplugged camera can take its whole timeout to fail; the node
        # vanishing says so at once (and is how a removed file shows as an unplug).
        if not os.path.exists(self.description):
            return None
        ok, image = capture.read()
        if ok:
            return image
        if self._is_file:
            # The end of the recording: play it again, as a camera never ends.
            if not self.open():
                return None
            capture = self._capture
            assert capture is not None
            ok, image = capture.read()
            return image if ok else None
        return None

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _configure(self, capture: cv2.VideoCapture) -> None:
        # The format first: which sizes and rates exist depends on it.
        if self.fourcc:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        capture.set(cv2.CAP_PROP_FPS, self.fps)
        capture.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, _READ_TIMEOUT_MS)
        code = int(capture.get(cv2.CAP_PROP_FOURCC))
        fourcc = code.to_bytes(4, "little").decode("ascii", "replace").strip("\x00")
        negotiated = (f"{int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))}x"
                      f"{int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
                      f"@{capture.get(cv2.CAP_PROP_FPS):g} {fourcc}")
        if negotiated != self.negotiated and negotiated != self.requested:
            log.warning("%s gives %s instead of the requested %s", self.description,
                        negotiated, self.requested)
        self.negotiated = negotiated


class OpencvCamera(GrabbingCamera):
    driver_name = "opencv"

    def __init__(
        self,
        device_id: str = "camera",
        device: int | str = 0,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        fourcc: str = "MJPG",
        reconnect_interval_s: float = 2.0,
    ) -> None:
        source = OpencvSource(
            _device(device), positive_int("width", width), positive_int("height", height),
            positive_number("fps", fps), _fourcc(fourcc))
        self.source = source
        super().__init__(device_id, source,
                         positive_number("reconnect_interval_s", reconnect_interval_s))

    def capabilities(self) -> Capabilities:
        return Capabilities(self.device_class, self.driver_name, model="V4L2 (OpenCV)",
                            features=frozenset({"preview", "capture", "reconnect"}))

    def _source_detail(self) -> dict[str, Any]:
        return {"requested": self.source.requested, "negotiated": self.source.negotiated}


def _device(value: Any) -> int | str:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"device must be a camera index (0, 1 ...) or a path such as /dev/video0, "
                     f"not {value!r}")


def _fourcc(value: Any) -> str:
    if value == "":
        return ""
    if (not isinstance(value, str) or len(value) != 4
            or not all(" " <= c <= "~" for c in value)):
        raise ValueError(f"fourcc must be four characters such as \"MJPG\" or \"YUYV\" (or \"\" "
                         f"for the camera's own), not {value!r}")
    return value
