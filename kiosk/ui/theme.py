"""Colours, the CJK font, and sizes that scale with the screen (landscape or portrait)."""

from __future__ import annotations

from pathlib import Path

from kivy.core.text import LabelBase
from kivy.core.window import Window

FONT_NAME = "CJK"

BLUE = (0.118, 0.357, 0.722, 1)  # 政务蓝
BLUE_DARK = (0.08, 0.25, 0.52, 1)
ORANGE = (0.91, 0.35, 0.05, 1)
GREEN = (0.13, 0.55, 0.30, 1)
BG = (0.957, 0.965, 0.98, 1)
CARD = (1, 1, 1, 1)
TEXT = (0.12, 0.16, 0.2, 1)
MUTED = (0.42, 0.46, 0.52, 1)
DISABLED = (0.86, 0.88, 0.91, 1)


def register_font(path: Path) -> None:
    LabelBase.register(FONT_NAME, str(path))


def px(n: float) -> float:
    """Design sizes are for the short side of 1080 px, in either orientation."""
    return n * min(Window.width, Window.height) / 1080.0


def portrait() -> bool:
    return Window.height > Window.width
