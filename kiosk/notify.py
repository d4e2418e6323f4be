"""sd_notify: tells systemd (or a benchmark that listens the same way) that the kiosk is up.

STATUS= is sent when the attract screen is first drawn, and READY=1 once storage, the
back-office client and the devices are built and the screen takes touches: "started" means a
citizen can use the kiosk. Without $NOTIFY_SOCKET it does nothing.
"""

from __future__ import annotations

import sdnotify

_notifier = sdnotify.SystemdNotifier()


def ready() -> None:
    _notifier.notify("READY=1")


def status(text: str) -> None:
    _notifier.notify(f"STATUS={text}")
