"""Elementary files of the LDS1 application (ICAO 9303 Part 10) that the kiosk reads."""

from __future__ import annotations

import enum

# eMRTD LDS1 application identifier.
LDS1_AID = bytes.fromhex("A0000002471001")


class EF(enum.IntEnum):
    """File identifiers for SELECT by FID inside the LDS1 application."""

    COM = 0x011E
    SOD = 0x011D
    DG1 = 0x0101
    DG2 = 0x0102


# The tag each file's content starts with (Part 10, 4.6 / 4.7).
FILE_TAGS: dict[EF, int] = {EF.COM: 0x60, EF.DG1: 0x61, EF.DG2: 0x75, EF.SOD: 0x77}
