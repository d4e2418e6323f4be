"""How personal data looks on a screen or a print: masked (DESIGN.md, PIPL)."""

from __future__ import annotations


def mask_name(name: str) -> str:
    """Keep the first character (usually the surname), hide the rest: 张三 -> 张*,
    欧阳娜娜 -> 欧***. Enough for a citizen to recognise their own booking, not for a
    passer-by to learn who booked."""
    name = name.strip()
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)
