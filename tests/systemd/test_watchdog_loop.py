"""The watchdog ping comes from the Kivy main loop: the kiosk's real app, offscreen in a process
of its own, pings the socket that stands in for systemd's, and stops pinging while its main
loop is blocked, which is what gets a frozen screen restarted. During start-up it asks for a
longer watchdog timeout and gives the unit's own back with READY=1 (kiosk/notify.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.notify import STARTUP_WATCHDOG_USEC
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


def start_up_watchdog_is_long_until_ready(listener: NotifyListener) -> tuple[str, int]:
    """The first datagram asks for the start-up watchdog; READY=1 restores the unit's own
    timeout in the same datagram. Returns the READY=1 message and its sender."""
    first, pid = listener.receive(60) or ("nothing", 0)
    assert first == f"WATCHDOG_USEC={STARTUP_WATCHDOG_USEC}", listener.messages
    message, ready_pid = listener.wait_for("READY=1")
    assert ready_pid == pid
    assert f"WATCHDOG_USEC={WATCHDOG_USEC}" in message.split("\n")
    later = [m for m, _ in listener.messages[1:-1]]
    assert not any(m.startswith("WATCHDOG_USEC=") for m in later), later
    return message, ready_pid


def pings_stop_while_the_loop_is_blocked(listener: NotifyListener,
                                         process: subprocess.Popen[str]) -> int:
    """Drives one start -> ready -> ping -> block -> ping -> stop cycle; returns the pinging
    PID."""
    _, ready_pid = start_up_watchdog_is_long_until_ready(listener)
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


def run_cli(listener: NotifyListener, runtime: Path, *args: str,
            python: list[str] | None = None, **env: str) -> subprocess.Popen[str]:
    """``kiosk ARGS`` as the unit runs it (through the CLI, so the start-up watchdog is asked
    for before Kivy loads), offscreen."""
    return subprocess.Popen(
        [*(python or [sys.executable]), "-m", "kiosk.cli", *args, "--windowed"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        text=True, cwd=PROJECT, start_new_session=True,
        env=child_env(listener, runtime, SDL_VIDEODRIVER="offscreen", **env))


def test_kiosk_run_starts_with_a_long_watchdog_and_stops_cleanly_on_sigterm(notify_listener,
                                                                          tmp_path):
    """The datagrams of `kiosk run` in order, then what ``systemctl stop`` sends: SDL turns
    SIGTERM into a quit event, so the app says STOPPING, closes the kiosk (session, outbox
    worker, devices) and exits 0 rather than dying with -SIGTERM mid-write."""
    process = run_cli(notify_listener, tmp_path, "run", "--config", str(child_config(tmp_path)))
    try:
        message, pid = start_up_watchdog_is_long_until_ready(notify_listener)
        assert pid == process.pid
        assert "STATUS=kiosk ready: taking touches" in message.split("\n")
        assert ("STATUS=attract screen drawn; starting devices", pid) in notify_listener.messages
        notify_listener.wait_for("WATCHDOG=1")
        process.send_signal(signal.SIGTERM)
        notify_listener.wait_for("STOPPING=1")
        assert process.wait(timeout=30) == 0
    finally:
        stop_process_group(process)


def numpy_that_kills(directory: Path) -> Path:
    """A numpy that dies the way NumPy 2 does on a CPU without x86-64-v2: SIGILL at import."""
    package = directory / "sigill" / "numpy"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n")
    return package.parent


def test_out_of_service_screen_reports_ready_without_numpy(notify_listener, tmp_path):
    """The fallback screen comes up, says so, does not need a loadable config, and never loads
    NumPy (the screen a CPU without x86-64-v2 gets: kiosk screen)."""
    broken = tmp_path / "broken.toml"
    broken.write_text("[kiosk\n")
    process = run_cli(notify_listener, tmp_path, "out-of-service", "--config", str(broken),
                      PYTHONPATH=str(numpy_that_kills(tmp_path)))
    try:
        message, pid = start_up_watchdog_is_long_until_ready(notify_listener)
        assert pid == process.pid
        assert "STATUS=out of service screen shown" in message.split("\n")
        assert process.poll() is None  # it stays up: a static screen, not a message and exit
        process.send_signal(signal.SIGTERM)
        notify_listener.wait_for("STOPPING=1")
        assert process.wait(timeout=30) == 0
    finally:
        stop_process_group(process)


def test_the_numpy_stand_in_does_kill(tmp_path):
    """Negative control for the test above: with it, `kiosk run` does not survive."""
    env = dict(os.environ, PYTHONPATH=str(numpy_that_kills(tmp_path)))
    done = subprocess.run([sys.executable, "-c", "import numpy"], env=env, cwd=PROJECT,
                          capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGILL


def test_out_of_service_screen_runs_on_a_cpu_without_x86_64_v2(notify_listener, tmp_path):
    """The real thing: the out-of-service screen under qemu's user-mode emulation of its
    ``qemu64`` CPU model (no SSSE3, SSE4.1, SSE4.2, POPCNT), where NumPy itself dies."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        pytest.skip("qemu-x86_64 missing: apt-get install qemu-user")
    emulated = [qemu, "-cpu", "qemu64", sys.executable]
    control = subprocess.run([*emulated, "-c", "import numpy"], capture_output=True,
                             cwd=PROJECT, timeout=120)
    assert control.returncode != 0  # NumPy 2 cannot run on this CPU
    process = run_cli(notify_listener, tmp_path, "out-of-service", "--config",
                      str(tmp_path / "absent.toml"), python=emulated)
    try:
        _, pid = start_up_watchdog_is_long_until_ready(notify_listener)
        assert pid == process.pid
        process.send_signal(signal.SIGTERM)
        notify_listener.wait_for("STOPPING=1", timeout=120)
        assert process.wait(timeout=60) == 0
    finally:
        stop_process_group(process)
