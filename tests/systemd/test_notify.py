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
    return notify_listener


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
