"""The units under a real systemd: this machine's own Debian 12 root, seen through an overlay
(nothing on the host changes), booted with systemd-nspawn, with the units installed by
systemd/install.sh and the kiosk run from a venv of the project. PID 1 here is not systemd; in
the container it is.

Checks what only a running systemd can show: the kiosk under cage reaches READY=1 (so
NotifyAccess=all works and the hardening leaves cage, Xwayland and Kivy working), a restart
is clean, a frozen kiosk is restarted by the watchdog, a kiosk that keeps failing falls back
to the out-of-service screen with the retry timer armed, and the health check passes.

Differences from the appliance, all in drop-ins written here: cage uses wlroots' headless
backend (a container has no seat and no GPU), the watchdog is 4 s instead of 30 s (the test
freezes the kiosk and waits for it), and the boot target starts only the Zizhu units.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.nspawn import Container, missing_nspawn, overlay_root
from tests.systemd.conftest import PROJECT, SYSTEMD_DIR

pytestmark = pytest.mark.ui

SITE_PACKAGES = next(p for p in sys.path if p.endswith("site-packages"))
# The checkout and its venv's packages, bound read-only into the container at fixed places:
# where they are on the host (/tmp, /root, a CI workspace) may be hidden from the units by
# PrivateTmp= and ProtectHome=, as it would be on an appliance.
SRC_IN_CONTAINER = "/opt/zizhu/src"
SITE_IN_CONTAINER = "/opt/zizhu/site-packages"
CONFIG = "/var/lib/zizhu/config/kiosk.toml"
KIOSK_TOML = """
[kiosk]
id = "ZZ-NSPAWN-001"
centre_id = "TEST-01"
centre_name = "测试市测试区政务服务中心"
data_dir = "/var/lib/zizhu/kiosk"
[backoffice]
url = "http://127.0.0.1:8765"
timeout_s = 3
[devices.barcode]
driver = "sim"
"""
# Stand-ins for the console scripts of the app's wheel.
KIOSK_SCRIPT = """#!/opt/zizhu/venv/bin/python
import sys
from kiosk.cli import main
sys.exit(main())
"""
BACKOFFICE_SCRIPT = """#!/opt/zizhu/venv/bin/python
import sys
from backoffice.cli import main
sys.exit(main())
"""
HEADLESS = "[Service]\nEnvironment=WLR_BACKENDS=headless WLR_RENDERER=pixman\n"
TEST_TARGET = """[Unit]
Description=Zizhu units only (boot test)
Requires=basic.target
After=basic.target
Wants=zizhu-kiosk.service zizhu-backoffice.service
AllowIsolate=yes
"""


def missing_prerequisite() -> str | None:
    reason = missing_nspawn()
    if reason:
        return reason
    for tool, package in (("cage", "cage"), ("Xwayland", "xwayland")):
        if shutil.which(tool) is None:
            return f"{tool} missing: apt-get install {package} (scripts/bootstrap.sh)"
    if not Path("/usr/bin/python3.11").exists():
        return "no /usr/bin/python3.11 to build the container's venv from"
    return None


def prepare_root(root: Path) -> None:
    """The host's root with the units installed as the image build does, a venv for the app,
    a provisioned config and the test drop-ins."""
    subprocess.run(["bash", str(SYSTEMD_DIR / "install.sh"), "--root", str(root),
                    "--with-backoffice"], check=True, capture_output=True)
    venv = root / "opt/zizhu/venv"
    subprocess.run(["chroot", str(root), "/usr/bin/python3.11", "-m", "venv", "--without-pip",
                    "/opt/zizhu/venv"],
                   check=True, capture_output=True)
    (venv / "lib/python3.11/site-packages/zizhu-dev.pth").write_text(
        f"{SITE_IN_CONTAINER}\n{SRC_IN_CONTAINER}\n")
    for name, text in (("kiosk", KIOSK_SCRIPT), ("kiosk-backoffice", BACKOFFICE_SCRIPT)):
        (venv / "bin" / name).write_text(text)
        (venv / "bin" / name).chmod(0o755)
    config = root / CONFIG.lstrip("/")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(KIOSK_TOML, encoding="utf-8")
    kiosk_gid = next(int(line.split(":")[2]) for line in
                     (root / "etc/group").read_text().splitlines()
                     if line.startswith("kiosk:"))
    os.chown(config.parent, 0, kiosk_gid)
    os.chown(config, 0, kiosk_gid)
    config.chmod(0o640)
    etc = root / "etc/systemd/system"
    for unit in ("zizhu-kiosk.service", "zizhu-out-of-service.service"):
        (etc / f"{unit}.d").mkdir(parents=True, exist_ok=True)
        (etc / f"{unit}.d/test-headless.conf").write_text(HEADLESS)
    (etc / "zizhu-kiosk.service.d/test-watchdog.conf").write_text("[Service]\nWatchdogSec=4s\n")
    (etc / "zizhu-backoffice.service.d").mkdir(parents=True, exist_ok=True)
    (etc / "zizhu-backoffice.service.d/test-seed.conf").write_text(
        f'[Service]\nEnvironment="ZIZHU_BACKOFFICE_ARGS=--seed '
        f'{SRC_IN_CONTAINER}/assets/seed/demo.json"\n')
    (etc / "zizhu-test.target").write_text(TEST_TARGET)


@pytest.fixture(scope="module")
def container() -> Iterator[Container]:
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    with ExitStack() as stack:
        try:
            overlay = stack.enter_context(overlay_root(Path("/"), "zizhu-nspawn-", size="1G"))
        except OSError as error:
            pytest.skip(str(error))
        prepare_root(overlay.root)
        booted = Container(overlay.root, options=(
            f"--bind-ro={PROJECT}:{SRC_IN_CONTAINER}",
            f"--bind-ro={SITE_PACKAGES}:{SITE_IN_CONTAINER}", "--private-network"),
            arguments=("systemd.unit=zizhu-test.target",), log=overlay.base / "console.log")
        stack.callback(booted.stop)
        booted.start().wait_active("zizhu-kiosk.service", timeout=90)
        yield booted


def kiosk_pid(container: Container) -> int:
    """The kiosk app: cage's child (the main PID) that is not Xwayland."""
    main = container.prop("zizhu-kiosk.service", "MainPID")
    children = container.run("pgrep", "-P", main, "-x", "kiosk").stdout.split()
    assert children, f"no kiosk process under cage ({main})"
    return int(children[0])


def test_kiosk_reaches_ready_under_cage_with_the_hardened_unit(container):
    main = container.prop("zizhu-kiosk.service", "MainPID")
    assert container.run("cat", f"/proc/{main}/comm").stdout.strip() == "cage"
    assert container.prop("zizhu-kiosk.service", "SubState") == "running"
    assert container.prop("zizhu-kiosk.service", "StatusText") == "kiosk ready: taking touches"
    assert container.prop("zizhu-kiosk.service", "User") == "kiosk"
    assert container.prop("zizhu-backoffice.service", "ActiveState") == "active"
    exposure = container.run("systemd-analyze", "security", "--no-pager",
                             "zizhu-kiosk.service").stdout
    assert "Overall exposure level for zizhu-kiosk.service: 1." in exposure


def test_health_check_passes(container):
    done = container.run("systemctl", "start", "zizhu-health.service")
    assert done.returncode == 0, container.run("journalctl", "-u", "zizhu-health.service").stdout
    text = container.run("cat", "/var/lib/zizhu/metrics/zizhu_health.prom").stdout
    assert "zizhu_healthy 1" in text and "zizhu_backoffice_up 1" in text


def test_restart_is_clean(container):
    """cage 0.1.4 aborts on SIGTERM; the unit counts that as a clean stop, so a restart (the
    technician's, or the maintenance screen's) does not end on the out-of-service screen."""
    done = container.run("systemctl", "restart", "zizhu-kiosk.service")
    assert done.returncode == 0, done.stderr
    assert container.prop("zizhu-kiosk.service", "Result") == "success"
    assert container.prop("zizhu-out-of-service.service", "ActiveState") == "inactive"


def test_frozen_kiosk_is_restarted_by_the_watchdog(container):
    container.freeze_and_await_watchdog("zizhu-kiosk.service", str(kiosk_pid(container)))


def test_failing_kiosk_falls_back_to_the_out_of_service_screen(container):
    config = container.root / CONFIG.lstrip("/")
    config.write_text(config.read_text() + "\n[kiosk\n")  # a config that no longer loads
    container.run("systemctl", "restart", "zizhu-kiosk.service")
    container.wait("the out-of-service screen",
                   lambda: container.prop("zizhu-out-of-service.service", "ActiveState")
                   == "active")
    assert container.prop("zizhu-kiosk.service", "ActiveState") == "failed"
    assert container.prop("zizhu-out-of-service.service", "StatusText") == (
        "out of service screen shown")
    assert container.prop("zizhu-kiosk-retry.timer", "ActiveState") == "active"
    # The technician fixes the config and starts the kiosk: the screen goes, so does the timer.
    config.write_text(KIOSK_TOML, encoding="utf-8")
    container.run("systemctl", "reset-failed", "zizhu-kiosk.service")
    assert container.run("systemctl", "start", "zizhu-kiosk.service").returncode == 0
    assert container.prop("zizhu-out-of-service.service", "ActiveState") == "inactive"
    assert container.prop("zizhu-kiosk-retry.timer", "ActiveState") == "inactive"
