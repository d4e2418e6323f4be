"""sd_notify: tells systemd (or a benchmark that listens the same way) that the kiosk is up.

READY=1 is sent when the attract screen has been drawn, not when the process starts, so
"started" means a citizen can see the kiosk. Without $NOTIFY_SOCKET it does nothing.
"""

from __future__ import annotations

import sdnotify

_notifier = sdnotify.SystemdNotifier()


def ready() -> None:
    _notifier.notify("READY=1")


def status(text: str) -> None:
    _notifier.notify(f"STATUS={text}")
