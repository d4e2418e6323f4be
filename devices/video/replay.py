"""A recording played as a camera (driver ``"replay"``): where no camera exists (tests, a
tester's laptop, CI), the kiosk still sees QR codes and documents.

Settings (config ``[devices.camera]``):

``path``   a video file OpenCV can read, a folder of images (played in name order; other files
           are skipped), or one image (a still scene)
``fps``    the rate frames are played at (default: the video's own rate, 15 for images)
``loop``   play again from the start at the end (default true)

Played once (``loop = false``), the last frame stays the newest frame when the recording
ends: the camera goes on showing that scene, as a real camera would show a document left on
the desk. The status stays ``online``, no new frames arrive (``frames`` stops growing,
``fps`` reads 0) and ``status().detail["ended"]`` is true.

A recording that disappears (file or folder removed) behaves like an unplugged camera:
``noDevice``/``Detached``, then ``Attached`` when it is back. Status and ``capture`` errors as
in ``devices.video.base``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from devices.contract import Capabilities
from devices.video.base import GrabbingCamera
from devices.video.grabber import EndOfStream
from devices.video.options import boolean, positive_number

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
DEFAULT_IMAGE_FPS = 15.0
# Decoded images are kept up to this many bytes, so a short loop (one QR held still) is not
# decoded again at every frame, and a long one does not fill the memory.
_CACHE_BYTES = 64 * 1024 * 1024
_MAX_FILE_FPS = 1000.0


class VideoFileSource:
    def __init__(self, path: Path, fps: float, loop: bool) -> None:
        self.path = path
        self.description = str(path)
        self.pace_fps: float | None = fps
        self.loop = loop
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> bool:
        self.close()
        if not self.path.is_file():
            return False
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            return False
        self._capture = capture
        return True

    def read(self) -> np.ndarray | None:
        if self._capture is None or not self.path.exists():
            return None
        ok, image = self._capture.read()
        if ok:
            return image
        if not self.loop:
            raise EndOfStream()
        if not self.open():
            return None
        assert self._capture is not None
        ok, image = self._capture.read()
        return image if ok else None

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class ImageSequenceSource:
    """A folder of images in name order, or a single image."""

    def __init__(self, path: Path, fps: float, loop: bool) -> None:
        self.path = path
        self.description = str(path)
        self.pace_fps: float | None = fps
        self.loop = loop
        self._files: list[Path] = []
        self._next = 0
        self._cache: dict[tuple[Path, int, int], np.ndarray] = {}
        self._cached_bytes = 0
        self._warned: set[Path] = set()

    def open(self) -> bool:
        self._files = image_files(self.path)
        self._next = 0
        return bool(self._files)

    def read(self) -> np.ndarray | None:
        # One unreadable file is skipped; a whole pass without a readable one is a failure.
        for _ in range(len(self._files)):
            if self._next >= len(self._files):
                if not self.loop:
                    raise EndOfStream()
                self._files = image_files(self.path)  # a tester may have changed the folder
                self._next = 0
                if not self._files:
                    return None
            path = self._files[self._next]
            self._next += 1
            image = self._load(path)
            if image is not None:
                return image
        if self._files and self._next >= len(self._files) and not self.loop:
            raise EndOfStream()
        return None

    def close(self) -> None:
        self._cache.clear()
        self._cached_bytes = 0

    def _load(self, path: Path) -> np.ndarray | None:
        try:
            info = path.stat()
        except OSError:
            return None
        key = (path, info.st_mtime_ns, info.st_size)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            if path not in self._warned:
                self._warned.add(path)
                log.warning("replay: %s is not a readable image; skipped", path.name)
            return None
        if self._cached_bytes + image.nbytes <= _CACHE_BYTES:
            # Shared between frames: the grabber hands frames out read-only.
            self._cache[key] = image
            self._cached_bytes += image.nbytes
        return image


class ReplayCamera(GrabbingCamera):
    driver_name = "replay"

    def __init__(
        self,
        device_id: str = "camera",
        path: str | os.PathLike[str] = "",
        fps: float | None = None,
        loop: bool = True,
        reconnect_interval_s: float = 1.0,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not str(path):
            raise ValueError("path must name a video file, a folder of images or an image")
        where = Path(path).expanduser()
        loop = boolean("loop", loop)
        rate = None if fps is None else positive_number("fps", fps)
        interval = positive_number("reconnect_interval_s", reconnect_interval_s)
        source: VideoFileSource | ImageSequenceSource
        if not where.exists():
            raise ValueError(f"replay path {where} does not exist")
        if where.is_dir() or where.suffix.lower() in IMAGE_SUFFIXES:
            if not image_files(where):
                raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) at {where}")
            source = ImageSequenceSource(where, rate or DEFAULT_IMAGE_FPS, loop)
        elif where.is_file():
            source = VideoFileSource(where, rate or _video_fps(where), loop)
        else:
            raise ValueError(f"replay path {where} is neither a file nor a folder")
        self.source = source
        self.loop = loop
        super().__init__(device_id, source, interval)

    @property
    def playback_fps(self) -> float:
        """The rate frames are played at (the setting, or the recording's own)."""
        return self.source.pace_fps or DEFAULT_IMAGE_FPS

    def capabilities(self) -> Capabilities:
        return Capabilities(self.device_class, self.driver_name, model="replay",
                            features=frozenset({"preview", "capture", "replay"}))

    def _source_detail(self) -> dict[str, Any]:
        return {"loop": self.loop, "playbackFps": self.playback_fps}


def image_files(path: Path) -> list[Path]:
    """The images a folder (or a single image path) holds, in name order."""
    if path.is_file():
        return [path] if path.suffix.lower() in IMAGE_SUFFIXES else []
    try:
        entries = sorted(path.iterdir(), key=lambda p: p.name)
    except OSError:
        return []
    return [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]


def _video_fps(path: Path) -> float:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened() or not capture.read()[0]:
            raise ValueError(f"{path} is not a video OpenCV can read")
        fps = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    return fps if 0 < fps <= _MAX_FILE_FPS else DEFAULT_IMAGE_FPS
