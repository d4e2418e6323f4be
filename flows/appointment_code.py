"""What an appointment QR code may contain before the back office is asked about it.

Until signed offline codes arrive, the payload is an appointment code the back office resolves,
either bare (``APT-DEMO-0001``) or with our scheme prefix (``ZZAPT:APT-DEMO-0001``). Anything
else — a web link, a payment code, binary noise — is refused here, without a network call.
"""

from __future__ import annotations

import re

PREFIX = "ZZAPT:"
_CODE = re.compile(r"[A-Za-z0-9_-]{4,64}")


class MalformedCode(ValueError):
    """The payload is not an appointment code; ``reason`` says why, for the audit log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_appointment_code(payload: str) -> str:
    text = payload.strip()  # scanners in keyboard/serial mode append CR/LF
    if text.upper().startswith(PREFIX):
        text = text[len(PREFIX):]
    if not text:
        raise MalformedCode("empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise MalformedCode("control_characters")
    if "://" in text:
        raise MalformedCode("web_link")
    if not _CODE.fullmatch(text):
        raise MalformedCode("not_an_appointment_code")
    return text.upper()
