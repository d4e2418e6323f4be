"""sd_notify: tells systemd (or a benchmark that listens the same way) that the kiosk is up and
that its screen is still alive.

STATUS= is sent when the attract screen is first drawn, and READY=1 once storage, the
back-office client and the devices are built and the screen takes touches: "started" means a
citizen can use the kiosk. WATCHDOG=1 is sent from the Kivy main loop (kiosk.ui.app), so a
frozen screen, not only a dead process, gets the kiosk restarted. Without $NOTIFY_SOCKET every
call does nothing.

On the appliance the kiosk is not the unit's main process: systemd starts cage, and cage starts
the kiosk (systemd/README.md). systemd therefore sets $WATCHDOG_PID to cage's PID, and the unit
needs NotifyAccess=all for the kiosk's messages to count.
"""

from __future__ import annotations

import functools
import logging
import os

import sdnotify

log = logging.getLogger(__name__)


@functools.cache
def _notifier(address: str | None) -> sdnotify.SystemdNotifier:
    # One connected socket per $NOTIFY_SOCKET value: the variable is read when the first
    # message goes out, not at import, so tests and benchmarks can set it late.
    return sdnotify.SystemdNotifier()


def _send(state: str) -> None:
    _notifier(os.environ.get("NOTIFY_SOCKET")).notify(state)


def ready(status: str | None = None) -> None:
    """READY=1, with the STATUS= that `systemctl status` shows from then on (one datagram)."""
    _send("READY=1" if status is None else f"READY=1\nSTATUS={status}")


def status(text: str) -> None:
    _send(f"STATUS={text}")


def stopping() -> None:
    _send("STOPPING=1")


def watchdog() -> None:
    """One keep-alive ping; systemd restarts the unit when none comes for WatchdogSec=."""
    _send("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds between pings (half of $WATCHDOG_USEC, as sd_watchdog_enabled advises), or None
    when systemd expects no pings from this process.

    $WATCHDOG_PID names the process systemd expects the pings from. Unlike sd_watchdog_enabled,
    the parent's PID is accepted too: under cage that is cage, the unit's main process, and the
    pings must come from the kiosk it started. A grandchild (the embedded back office) does not
    qualify, so it cannot keep a frozen kiosk alive.
    """
    if not os.environ.get("NOTIFY_SOCKET"):
        return None
    raw = os.environ.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw)
    except ValueError:
        if raw:
            log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", raw)
        return None
    if usec <= 0:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid not in (str(os.getpid()), str(os.getppid())):
        log.warning("systemd expects watchdog pings from PID %s, which is neither this process "
                    "nor its parent: not pinging (is the kiosk started through a wrapper?)", pid)
        return None
    return usec / 2_000_000
