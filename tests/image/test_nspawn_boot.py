"""The built root file system booted with systemd-nspawn as the appliance boots it: read-only,
/var a tmpfs (--volatile=state, what systemd.volatile=state does on the kiosk), the data
partition's contents at /var/lib/zizhu. Checks that the services come up on the image's own
packages and units, the CUPS queues come from the data partition, and a frozen kiosk is
restarted by the watchdog.

Test-only differences, in drop-ins on an overlay (the built tree is not changed): cage uses
wlroots' headless backend (no seat, no GPU in a container), the watchdog is 4 s instead of
30 s, and the ESP's automount is masked (nspawn binds the data folder itself)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.image.conftest import IMAGE_BUILD, TEST_TIMEOUT_S, BuiltImage

pytestmark = [pytest.mark.image, pytest.mark.timeout(TEST_TIMEOUT_S)]
HEADLESS = "[Service]\nEnvironment=WLR_BACKENDS=headless WLR_RENDERER=pixman\n"
CONFIG = "var/lib/zizhu/config/kiosk.toml"


class Container:
    def __init__(self, root: Path, data: Path, log: Path) -> None:
        self.root = root
        self.log = log
        with log.open("w") as out:
            self.nspawn = subprocess.Popen(
                ["systemd-nspawn", "-D", str(root), "--boot", "--register=no", "--keep-unit",
                 "--volatile=state", f"--bind={data}:/var/lib/zizhu", "--private-network",
                 "--console=pipe"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.leader = self._leader()

    def _leader(self) -> int:
        deadline = time.monotonic() + 30
        children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
        while time.monotonic() < deadline:
            if children.exists() and children.read_text().split():
                return int(children.read_text().split()[0])
            if self.nspawn.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"systemd-nspawn did not start:\n{self.log.read_text()[-2000:]}")

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "-t", str(self.leader), "-a", *command],
                              capture_output=True, text=True, timeout=120)

    def prop(self, unit: str, name: str) -> str:
        return self.run("systemctl", "show", "-p", name, "--value", unit).stdout.strip()

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                # systemd's own lines: the app's are long tracebacks (faulthandler on SIGABRT).
                journal = self.run("journalctl", "--no-pager", "-n", "40",
                                   "_PID=1").stdout
                raise AssertionError(f"timed out waiting for {what}; journal ends:\n{journal}")
            time.sleep(0.25)

    def stop(self) -> None:
        if self.nspawn.poll() is None:
            self.run("systemctl", "poweroff")
            try:
                self.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, 9)
                self.nspawn.wait()


def add_test_drop_ins(upper: Path) -> None:
    etc = upper / "etc/systemd/system"
    for unit in ("zizhu-kiosk.service", "zizhu-out-of-service.service"):
        (etc / f"{unit}.d").mkdir(parents=True, exist_ok=True)
        (etc / f"{unit}.d/test-headless.conf").write_text(HEADLESS)
    (etc / "zizhu-kiosk.service.d/test-watchdog.conf").write_text("[Service]\nWatchdogSec=4s\n")
    # The ESP is not there. The data partition's fstab mount stays: nspawn's bind is already
    # at /var/lib/zizhu, so systemd counts it as mounted (units RequiresMountsFor= it).
    for unit in ("efi.automount", "efi.mount"):
        (etc / unit).symlink_to("/dev/null")


def data_folder(root: Path, data: Path) -> None:
    """What disk.sh puts on a fresh data partition: the factory config, readable by kiosk."""
    gid = next(int(line.split(":")[2]) for line in (root / "etc/group").read_text().splitlines()
               if line.startswith("kiosk:"))
    config = data / CONFIG.removeprefix("var/lib/zizhu/")
    config.parent.mkdir(parents=True)
    shutil.copy(IMAGE_BUILD / "factory/kiosk.toml", config)
    os.chown(config.parent, 0, gid)
    config.parent.chmod(0o750)
    os.chown(config, 0, gid)
    config.chmod(0o640)


@pytest.fixture(scope="module")
def container(built_image: BuiltImage) -> Iterator[Container]:
    if shutil.which("systemd-nspawn") is None:
        pytest.skip("systemd-nspawn missing: apt-get install systemd-container")
    base = Path(tempfile.mkdtemp(prefix="zizhu-image-nspawn-"))
    layers, root, data = base / "layers", base / "root", base / "data"
    for folder in (layers, root, data):
        folder.mkdir()
    data.chmod(0o755)
    mounted: list[Path] = []
    booted: Container | None = None
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256M", "tmpfs", str(layers)],
                       check=True, capture_output=True)
        mounted.append(layers)
        (layers / "upper").mkdir()
        (layers / "work").mkdir()
        add_test_drop_ins(layers / "upper")
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={built_image.rootfs},upperdir={layers / 'upper'},"
                        f"workdir={layers / 'work'}", str(root)], check=True, capture_output=True)
        mounted.append(root)
        data_folder(root, data)
        booted = Container(root, data, base / "console.log")
        booted.wait("the kiosk to report READY=1",
                    lambda: booted is not None
                    and booted.prop("zizhu-kiosk.service", "ActiveState") == "active")
        yield booted
    finally:
        if booted is not None:
            booted.stop()
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_system_is_running_with_no_failed_unit(container: Container):
    state = container.run("systemctl", "is-system-running", "--wait").stdout.strip()
    failed = container.run("systemctl", "list-units", "--failed", "--plain", "--no-legend").stdout
    assert state == "running", failed


def test_kiosk_runs_under_cage_as_the_kiosk_user(container: Container):
    main = container.prop("zizhu-kiosk.service", "MainPID")
    assert container.run("cat", f"/proc/{main}/comm").stdout.strip() == "cage"
    assert container.prop("zizhu-kiosk.service", "StatusText") == "kiosk ready: taking touches"
    assert container.prop("zizhu-kiosk.service", "User") == "kiosk"
    for unit in ("cups.service", "seatd.service", "pcscd.socket", "zizhu-health.timer"):
        assert container.prop(unit, "ActiveState") == "active", unit


def test_root_is_read_only_and_state_is_volatile(container: Container):
    assert "ro" in container.run("findmnt", "-n", "-o", "OPTIONS", "/").stdout.split(",")
    assert container.run("touch", "/etc/zizhu-written").returncode != 0
    assert container.run("findmnt", "-n", "-o", "FSTYPE", "/var").stdout.strip() == "tmpfs"


def test_cups_queues_come_from_the_data_partition(container: Container):
    container.run("systemctl", "start", "cups.service")
    assert container.run("mountpoint", "-q", "/etc/cups").returncode == 0
    same = container.run("stat", "-c", "%d:%i", "/etc/cups", "/var/lib/zizhu/cups").stdout.split()
    assert len(same) == 2 and same[0] == same[1]  # /etc/cups is the data partition's folder
    queues = container.run("lpstat", "-h", "/run/cups/cups.sock", "-e").stdout.split()
    assert sorted(queues) == ["zizhu-a4", "zizhu-receipt"]
    printers = container.run("cat", "/etc/cups/printers.conf").stdout
    assert printers.count("ErrorPolicy abort-job") == 2, printers


def test_frozen_kiosk_is_restarted_by_the_watchdog(container: Container):
    before = int(container.prop("zizhu-kiosk.service", "NRestarts"))
    main = container.prop("zizhu-kiosk.service", "MainPID")
    kiosk = container.run("pgrep", "-P", main, "-x", "kiosk").stdout.split()
    assert kiosk, f"no kiosk process under cage ({main})"
    assert container.run("kill", "-STOP", kiosk[0]).returncode == 0
    container.wait("a watchdog restart",
                   lambda: int(container.prop("zizhu-kiosk.service", "NRestarts")) > before)
    journal = container.run("journalctl", "--no-pager", "-u", "zizhu-kiosk.service").stdout
    assert "Watchdog timeout" in journal
    container.wait("the kiosk to be ready again",
                   lambda: container.prop("zizhu-kiosk.service", "ActiveState") == "active")
