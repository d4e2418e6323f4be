"""The kiosk as the appliance runs it: cage (headless wlroots backend here, the DRM one on a
kiosk) starts the Kivy app, which draws through Xwayland, as an unprivileged user, with the
environment of zizhu-kiosk.service and the cage options `kiosk screen` gives. Measures which
process talks to systemd: the kiosk, cage's child, not cage, the unit's main process. Hence
NotifyAccess=all, and WATCHDOG_PID (cage's PID) being accepted as the parent's in
kiosk.notify. Then `kiosk screen` itself, as the units run it: it becomes cage."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kiosk import compositor
from tests.systemd.conftest import PROJECT, SYSTEMD_DIR, NotifyListener, stop_process_group
from tests.systemd.test_watchdog_loop import (
    CHILD,
    child_config,
    child_env,
    pings_stop_while_the_loop_is_blocked,
    start_up_watchdog_is_long_until_ready,
)

pytestmark = pytest.mark.ui

KIOSK_UNIT = SYSTEMD_DIR / "system" / "zizhu-kiosk.service"
USER = "nobody"  # cage refuses to run as root
SITE_PACKAGES = next(p for p in sys.path if p.endswith("site-packages"))


def unit_setting(key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in KIOSK_UNIT.read_text().splitlines()
            if line.startswith(f"{key}=")]


def as_user(user: pwd.struct_passwd) -> list[str]:
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]


def python_for(user: pwd.struct_passwd, scratch: Path) -> str | None:
    """An interpreter ``user`` can run that has the project's packages: this one, or the
    system's Python 3.11 with the venv's site-packages (the venv's own interpreter may be
    under /root, which only root can enter)."""
    for candidate in (os.path.realpath(sys.executable), "/usr/bin/python3.11"):
        # Through sh: setpriv itself still holds root's capabilities when it calls exec.
        probe = subprocess.run(
            [*as_user(user), "/bin/sh", "-c", 'exec "$@"', "sh", candidate, "-c",
             "import kivy, sdnotify, pydantic"],
            env={"PYTHONPATH": SITE_PACKAGES, "KIVY_NO_ARGS": "1", "KIVY_NO_CONSOLELOG": "1",
                 "KIVY_HOME": str(scratch / "kivy")}, capture_output=True)
        if probe.returncode == 0:
            return candidate
    return None


@pytest.fixture
def shared_dir():
    directory = Path(tempfile.mkdtemp(prefix="zizhu-cage-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def setup_as_user(notify_listener: NotifyListener,
                  shared_dir: Path) -> tuple[pwd.struct_passwd, str, dict[str, str]]:
    """The user, its Python, and the unit's environment (%t is /run there) plus what a
    headless test needs; skips where cage cannot run here."""
    if shutil.which("cage") is None or shutil.which("Xwayland") is None:
        pytest.skip("cage/Xwayland missing: apt-get install cage xwayland (scripts/bootstrap.sh)")
    if os.geteuid() != 0:
        pytest.skip("needs root to run cage as an unprivileged user")
    user = pwd.getpwnam(USER)
    runtime = shared_dir / "run"
    runtime.mkdir(mode=0o700)
    os.chown(runtime, user.pw_uid, user.pw_gid)
    python = python_for(user, runtime)
    if python is None:
        pytest.skip(f"no Python 3.11 with the project's packages that {USER} can run")
    env = child_env(notify_listener, runtime)
    for line in unit_setting("Environment"):
        for assignment in shlex.split(line.replace("%t/zizhu-kiosk", str(runtime))):
            key, value = assignment.split("=", 1)
            env[key] = value
    env.pop("LIBSEAT_BACKEND")  # no seat here: the headless backend needs none
    env.update(WLR_BACKENDS="headless", WLR_RENDERER="pixman",
               PYTHONPATH=SITE_PACKAGES)
    return user, python, env


def test_kiosk_under_cage_pings_as_cages_child(notify_listener, shared_dir):
    user, python, env = setup_as_user(notify_listener, shared_dir)
    config = child_config(shared_dir)
    (shared_dir / "data").mkdir()
    os.chown(shared_dir / "data", user.pw_uid, user.pw_gid)
    cage = compositor.plan("run", config, environ=env).argv
    cage_options = cage[:cage.index("--")]
    assert cage_options[0] == "/usr/bin/cage"
    kiosk = [python, str(CHILD), "kiosk", str(config)]
    # sh sets WATCHDOG_PID to its own PID, then becomes cage, as systemd sets it to cage's.
    command = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", *as_user(user),
               shutil.which("cage") or "cage", *cage_options[1:], "--", *kiosk]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, text=True, cwd=PROJECT,
                               env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        sender = pings_stop_while_the_loop_is_blocked(notify_listener, process)
    finally:
        stop_process_group(process)
    cage_pid = process.pid
    assert sender != cage_pid, "the kiosk was cage's main process after all"
    assert any("READY=1" in message.split("\n") and pid == sender
               for message, pid in notify_listener.messages)
    # So systemd, which by default (NotifyAccess=main) hears only cage, must hear all.
    assert unit_setting("NotifyAccess") == ["all"]


def test_kiosk_screen_becomes_cage_with_the_display_settings(notify_listener, shared_dir):
    """What the units run: `kiosk screen out-of-service` with [display] rotation = 90 execs
    cage (same PID, so still the one systemd watches) with -r, and the app inside asks for
    the start-up watchdog and gives it back with READY=1."""
    user, python, env = setup_as_user(notify_listener, shared_dir)
    config = shared_dir / "kiosk.toml"
    config.write_text("[display]\nrotation = 90\n")  # and nothing else: out of service anyway
    command = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", *as_user(user), python, "-m",
               "kiosk.cli", "screen", "out-of-service", "--config", str(config),
               "--cage", shutil.which("cage") or "cage"]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, text=True, cwd=PROJECT,
                               env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        message, sender = start_up_watchdog_is_long_until_ready(notify_listener)
        assert "STATUS=out of service screen shown" in message.split("\n")
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_text().split("\0")[:-1]
        comm = Path(f"/proc/{process.pid}/comm").read_text().strip()
        parent = int(Path(f"/proc/{sender}/stat").read_text().rsplit(")", 1)[1].split()[1])
    finally:
        stop_process_group(process)
    assert comm == "cage"
    assert cmdline[:cmdline.index("--")] == [shutil.which("cage"), "-d", "-r"]
    assert cmdline[cmdline.index("--") + 1:] == [python, "-m", "kiosk.cli", "out-of-service",
                                                 "--config", str(config)]
    assert parent == process.pid  # the screen is cage's child, as the kiosk is
