"""Recordings generated for the camera tests: deterministic from a seed, written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


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
