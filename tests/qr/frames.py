"""Generated frames shared by the QR tests: each frame is made once per test session."""

from __future__ import annotations

from functools import cache

from devices.sim import qr_scenes
from devices.sim.qr_scenes import Clip, Sample


@cache
def frame(condition: str, index: int) -> Sample:
    return qr_scenes.sample(index, condition)


@cache
def clip(condition: str, index: int, frames: int) -> Clip:
    return qr_scenes.clip(index, condition, frames)
