"""kiosk.notify against a socket standing in for systemd's: what is sent, and when the
watchdog asks for pings from this process."""

from __future__ import annotations

import os

import pytest

from kiosk import notify


@pytest.fixture
def systemd(notify_listener, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_listener.path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setattr(notify, "_restore_usec", None)  # no start-up state from another test
    return notify_listener


def received(listener) -> list[str]:
    """Every datagram sent so far, in order: a unix datagram is in the receiving queue when
    sendto() returns, so there is nothing to wait for."""
    while listener.receive(0.01) is not None:
        pass
    return [message for message, _ in listener.messages]


def test_messages_reach_the_socket_with_our_pid(systemd):
    notify.status("attract screen drawn")
    notify.ready()
    notify.ready("kiosk ready")
    notify.watchdog()
    notify.stopping()
    got = [systemd.receive(5) for _ in range(5)]
    assert got == [("STATUS=attract screen drawn", os.getpid()), ("READY=1", os.getpid()),
                   ("READY=1\nSTATUS=kiosk ready", os.getpid()),
                   ("WATCHDOG=1", os.getpid()), ("STOPPING=1", os.getpid())]


def test_abstract_socket_address_is_understood(monkeypatch):
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"zizhu-test-{os.getpid()}"
    sock.bind("\0" + name)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)  # how systemd ≥ 254 may pass it
    notify.watchdog()
    assert sock.recv(100) == b"WATCHDOG=1"
    sock.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_fails(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    notify.ready()
    notify.watchdog()
    assert notify.watchdog_interval() is None


def test_interval_is_half_the_watchdog_timeout(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert notify.watchdog_interval() == 15.0


@pytest.mark.parametrize("value", ["", "0", "-5", "30s", "abc"])
def test_no_or_bad_watchdog_timeout_means_no_pings(systemd, monkeypatch, value):
    monkeypatch.setenv("WATCHDOG_USEC", value)
    assert notify.watchdog_interval() is None


def test_pings_are_for_us_or_for_cage_our_parent(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notify.watchdog_interval() == 1.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getppid()))  # under cage: cage is the main PID
    assert notify.watchdog_interval() == 1.0


def test_pings_meant_for_another_process_are_not_sent(systemd, monkeypatch, caplog):
    # The embedded back office, a grandchild of cage, must not keep a frozen kiosk alive.
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + os.getppid() + 1))  # neither
    assert notify.watchdog_interval() is None
    assert "neither this process nor its parent" in caplog.text


# --- a longer watchdog during start-up ------------------------------------------------------
# systemd 252 (src/core/service.c): WATCHDOG_USEC= replaces the unit's timeout and restarts the
# countdown; READY=1 in the same datagram makes the unit active with the timeout restored.


def test_start_up_asks_for_a_long_timeout_and_ready_gives_the_units_back(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getppid()))  # cage's, as on the appliance
    assert notify.extend_watchdog_for_startup() is True
    notify.status("attract screen drawn")
    notify.watchdog()
    notify.ready("kiosk ready")
    notify.watchdog()
    notify.ready("again")  # a second READY=1 (e.g. after a reload) restores nothing
    assert received(systemd) == [
        f"WATCHDOG_USEC={notify.STARTUP_WATCHDOG_USEC}", "STATUS=attract screen drawn",
        "WATCHDOG=1", "READY=1\nWATCHDOG_USEC=30000000\nSTATUS=kiosk ready", "WATCHDOG=1",
        "READY=1\nSTATUS=again"]
    assert notify.STARTUP_WATCHDOG_USEC >= 15 * 60 * 1_000_000  # beyond any TimeoutStartSec=
    assert notify.watchdog_interval() == 15.0  # pings keep the unit's own pace meanwhile


def test_ready_restores_even_without_a_status(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    notify.extend_watchdog_for_startup(60_000_000)
    notify.extend_watchdog_for_startup(90_000_000)  # twice: the unit's value is still restored
    notify.ready()
    assert received(systemd) == ["WATCHDOG_USEC=60000000", "WATCHDOG_USEC=90000000",
                                 "READY=1\nWATCHDOG_USEC=4000000"]


@pytest.mark.parametrize("unit_usec", [None, "0", "abc", "7200000000"])
def test_no_extension_without_a_watchdog_or_when_the_units_is_longer(systemd, monkeypatch,
                                                                      unit_usec):
    if unit_usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", unit_usec)
    assert notify.extend_watchdog_for_startup() is False
    notify.ready()
    assert received(systemd) == ["READY=1"]


def test_no_extension_for_a_process_that_is_not_the_pinger(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + os.getppid() + 1))
    assert notify.extend_watchdog_for_startup() is False
    notify.ready()
    assert received(systemd) == ["READY=1"]
