"""The watchdog ping comes from the Kivy main loop: the kiosk's real app, offscreen in a process
of its own, pings the socket that stands in for systemd's, and stops pinging while its main
loop is blocked, which is what gets a frozen screen restarted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.systemd.conftest import PROJECT, NotifyListener, stop_process_group
from tests.systemd.kivy_child import BLOCKED, FREED

pytestmark = pytest.mark.ui

CHILD = Path(__file__).with_name("kivy_child.py")
WATCHDOG_USEC = 400_000  # a ping every 0.2 s
BLOCK_S = 1.5  # several intervals: a ping from anywhere but the main loop would show up


def child_config(directory: Path) -> Path:
    config = directory / "kiosk.toml"
    config.write_text(f"""
[kiosk]
id = "ZZ-TEST-WD"
centre_id = "TEST-01"
centre_name = "测试市测试区政务服务中心"
fullscreen = false
data_dir = "{directory / 'data'}"
[backoffice]
url = "http://127.0.0.1:9"
timeout_s = 1
[devices.barcode]
driver = "sim"
""", encoding="utf-8")
    return config


def child_env(listener: NotifyListener, runtime: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "WATCHDOG_PID")}
    env.update(NOTIFY_SOCKET=str(listener.path), WATCHDOG_USEC=str(WATCHDOG_USEC),
               KIVY_HOME=str(runtime / "kivy"), KIVY_NO_ARGS="1", KIVY_NO_FILELOG="1",
               KIVY_NO_CONSOLELOG="1", KIVY_NO_CONFIG="1", **extra)
    return env


def send(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def pings_stop_while_the_loop_is_blocked(listener: NotifyListener,
                                         process: subprocess.Popen[str]) -> int:
    """Drives one ready -> ping -> block -> ping -> stop cycle; returns the pinging PID."""
    _, ready_pid = listener.wait_for("READY=1")
    for _ in range(3):
        _, pid = listener.wait_for("WATCHDOG=1")
        assert pid == ready_pid
    send(process, f"block {BLOCK_S}")
    listener.wait_for(BLOCKED)
    start = len(listener.messages)
    listener.wait_for(FREED)
    during = [m for m, _ in listener.messages[start:-1]]
    assert "WATCHDOG=1" not in during, f"pinged while the main loop was blocked: {during}"
    for _ in range(2):  # and pings resume once the loop runs again
        listener.wait_for("WATCHDOG=1")
    send(process, "stop")
    listener.wait_for("STOPPING=1")
    assert process.wait(timeout=30) == 0
    return ready_pid


def test_kiosk_pings_from_its_main_loop_and_not_while_it_is_frozen(notify_listener, tmp_path):
    process = subprocess.Popen(
        [sys.executable, str(CHILD), "kiosk", str(child_config(tmp_path))],
        stdin=subprocess.PIPE, text=True, cwd=PROJECT, start_new_session=True,
        env=child_env(notify_listener, tmp_path, SDL_VIDEODRIVER="offscreen"))
    try:
        pid = pings_stop_while_the_loop_is_blocked(notify_listener, process)
        assert pid == process.pid
        assert ("STATUS=attract screen drawn; starting devices", pid) in notify_listener.messages
    finally:
        stop_process_group(process)


def test_sigterm_stops_the_kiosk_cleanly(notify_listener, tmp_path):
    """What ``systemctl stop`` sends: SDL turns SIGTERM into a quit event, so the app says
    STOPPING, closes the kiosk (session, outbox worker, devices) and exits 0 rather than
    dying with -SIGTERM mid-write."""
    import signal

    process = subprocess.Popen(
        [sys.executable, str(CHILD), "kiosk", str(child_config(tmp_path))],
        stdin=subprocess.PIPE, text=True, cwd=PROJECT, start_new_session=True,
        env=child_env(notify_listener, tmp_path, SDL_VIDEODRIVER="offscreen"))
    try:
        notify_listener.wait_for("READY=1")
        process.send_signal(signal.SIGTERM)
        notify_listener.wait_for("STOPPING=1")
        assert process.wait(timeout=30) == 0
    finally:
        stop_process_group(process)


def test_out_of_service_screen_reports_ready(notify_listener, tmp_path):
    """The fallback screen comes up, says so, and does not need a loadable config."""
    broken = tmp_path / "broken.toml"
    broken.write_text("[kiosk\n")
    process = subprocess.Popen(
        [sys.executable, str(CHILD), "out-of-service", str(broken)],
        stdin=subprocess.PIPE, text=True, cwd=PROJECT, start_new_session=True,
        env=child_env(notify_listener, tmp_path, SDL_VIDEODRIVER="offscreen"))
    try:
        message, pid = notify_listener.wait_for("READY=1")
        assert pid == process.pid
        assert "STATUS=out of service screen shown" in message.split("\n")
        assert process.poll() is None  # it stays up: a static screen, not a message and exit
        send(process, "stop")
        notify_listener.wait_for("STOPPING=1")
        assert process.wait(timeout=30) == 0
    finally:
        stop_process_group(process)
