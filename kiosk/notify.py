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

Start-up: systemd (252, src/core/service.c) arms a Type=notify unit's watchdog at its first
WATCHDOG=1 or WATCHDOG_USEC= message, or at READY=1, whichever comes first; from then on every
WATCHDOG_USEC= replaces WatchdogSec= and restarts the countdown. The app pings from the Kivy
loop as soon as the window exists, and its second start-up step then blocks that loop for as
long as building the kiosk takes (over 30 s under qemu without KVM: killed before READY=1).
So :func:`extend_watchdog_for_startup` asks for a long timeout before Kivy is even imported,
and :func:`ready` gives the unit's own value back in the READY=1 datagram: from READY=1 on, a
frozen screen is restarted within WatchdogSec= again. A hang before READY=1 is
TimeoutStartSec='s to catch.
"""

from __future__ import annotations

import functools
import logging
import os

import sdnotify

log = logging.getLogger(__name__)

# Longer than any TimeoutStartSec= a kiosk unit has (90 s; 15 min with zizhu.slow_machine=1),
# so that start-up is bounded by that setting alone, never by the watchdog.
STARTUP_WATCHDOG_USEC = 60 * 60 * 1_000_000

# The unit's own WatchdogSec= (in microseconds) while a longer start-up value is in force.
_restore_usec: int | None = None


@functools.cache
def _notifier(address: str | None) -> sdnotify.SystemdNotifier:
    # One connected socket per $NOTIFY_SOCKET value: the variable is read when the first
    # message goes out, not at import, so tests and benchmarks can set it late.
    return sdnotify.SystemdNotifier()


def _send(state: str) -> None:
    _notifier(os.environ.get("NOTIFY_SOCKET")).notify(state)


def ready(status: str | None = None) -> None:
    """READY=1, with the STATUS= that `systemctl status` shows from then on, and the unit's
    own watchdog timeout back if start-up had a longer one: one datagram, so there is no moment
    after READY=1 when a frozen screen would wait out the start-up timeout."""
    global _restore_usec
    lines = ["READY=1"]
    if _restore_usec is not None:
        lines.append(f"WATCHDOG_USEC={_restore_usec}")
        _restore_usec = None
    if status is not None:
        lines.append(f"STATUS={status}")
    _send("\n".join(lines))


def status(text: str) -> None:
    _send(f"STATUS={text}")


def stopping() -> None:
    _send("STOPPING=1")


def watchdog() -> None:
    """One keep-alive ping; systemd restarts the unit when none comes for WatchdogSec=."""
    _send("WATCHDOG=1")


def extend_watchdog_for_startup(usec: int = STARTUP_WATCHDOG_USEC) -> bool:
    """Ask systemd for a watchdog timeout of ``usec`` until :func:`ready`, which restores the
    unit's own (from $WATCHDOG_USEC, as systemd set it for this start). Call it before
    anything slow, Kivy's import included. Does nothing, and returns False, when systemd
    expects no pings from this process or the unit's own timeout is already as long."""
    global _restore_usec
    unit_usec = _unit_watchdog_usec()
    if unit_usec is None or usec <= unit_usec:
        return False
    _send(f"WATCHDOG_USEC={usec}")
    if _restore_usec is None:
        _restore_usec = unit_usec
    log.info("watchdog: %d s during start-up, %g s from READY=1 on", usec // 1_000_000,
             unit_usec / 1_000_000)
    return True


def watchdog_interval() -> float | None:
    """Seconds between pings (half of $WATCHDOG_USEC, as sd_watchdog_enabled advises), or None
    when systemd expects no pings from this process.

    $WATCHDOG_PID names the process systemd expects the pings from. Unlike sd_watchdog_enabled,
    the parent's PID is accepted too: under cage that is cage, the unit's main process, and the
    pings must come from the kiosk it started. A grandchild (the embedded back office) does not
    qualify, so it cannot keep a frozen kiosk alive.
    """
    usec = _unit_watchdog_usec()
    return None if usec is None else usec / 2_000_000


def _unit_watchdog_usec() -> int | None:
    """$WATCHDOG_USEC when the pings are this process's to send (see watchdog_interval)."""
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
    return usec
