"""The Chinese font for screen and print (fonts-wqy-microhei, DESIGN.md)."""

from __future__ import annotations

from pathlib import Path

FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
