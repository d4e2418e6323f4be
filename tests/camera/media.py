"""Recordings generated for the camera tests: deterministic from a seed, written to tmp_path."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from devices.contract import Device, Event, EventKind


def noise_frames(seed: int, count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """``count`` distinct BGR frames; each differs from the others in nearly every pixel."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """A lossless (FFV1) video, so a frame read back equals the frame written."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


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

    def kinds(self) -> list[EventKind]:
        with self._lock:
            return [e.kind for e in self.items]

    def count(self, kind: EventKind) -> int:
        return self.kinds().count(kind)

    def wait(self, kind: EventKind, count: int = 1) -> bool:
        return wait_until(lambda: self.count(kind) >= count)
