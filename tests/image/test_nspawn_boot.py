"""The built root file system booted with systemd-nspawn as the appliance boots it: read-only,
/var a tmpfs (--volatile=state, what systemd.volatile=state does on the kiosk), the data
partition's contents at /var/lib/zizhu. Checks that the services come up on the image's own
packages and units, the CUPS queues come from the data partition, a frozen kiosk is restarted
by the watchdog, node_exporter serves the kiosk's metrics, RAUC accepts the build's bundle and
refuses one signed by another key, and the journal outlives a reboot.

Test-only differences, in drop-ins on an overlay (the built tree is not changed): cage uses
wlroots' headless backend (no seat, no GPU in a container), the watchdog is 4 s instead of
30 s, and the ESP's automount is masked (nspawn binds the data folder itself). A container has
no kernel command line of its own: `rauc.slot=a`, which the boot entry of slot A carries, is
given to the container's systemd as an argument and bound over /proc/cmdline (RAUC reads that
file). A container has no initrd either: the machine id that the initrd would take from the
data partition is passed to the second boot with --uuid."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.conftest import IMAGE_BUILD, TEST_TIMEOUT_S, BuiltImage
from tests.nspawn import Container, missing_nspawn, overlay_root

pytestmark = [pytest.mark.image, pytest.mark.timeout(TEST_TIMEOUT_S)]
HEADLESS = "[Service]\nEnvironment=WLR_BACKENDS=headless WLR_RENDERER=pixman\n"
CONFIG = "var/lib/zizhu/config/kiosk.toml"
BUNDLE = "/srv/zizhu/update.raucb"
FOREIGN_BUNDLE = "/srv/zizhu/foreign.raucb"
CMDLINE = "rauc.slot=a\n"
CMDLINE_FILE = "/srv/zizhu/cmdline"


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


def group_id(root: Path, name: str) -> int:
    return next(int(line.split(":")[2]) for line in (root / "etc/group").read_text().splitlines()
                if line.startswith(f"{name}:"))


def data_folder(root: Path, data: Path) -> None:
    """What disk.sh puts on a fresh data partition: the factory config, readable by kiosk, and
    the journal's folder."""
    gid = group_id(root, "kiosk")
    config = data / CONFIG.removeprefix("var/lib/zizhu/")
    config.parent.mkdir(parents=True)
    shutil.copy(IMAGE_BUILD / "factory/kiosk.toml", config)
    os.chown(config.parent, 0, gid)
    config.parent.chmod(0o750)
    os.chown(config, 0, gid)
    config.chmod(0o640)
    journal = data / "journal"
    journal.mkdir()
    os.chown(journal, 0, group_id(root, "systemd-journal"))
    journal.chmod(0o2755)


def foreign_bundle(bundle: Path, folder: Path) -> Path:
    """The build's bundle signed again by a code-signing certificate the image does not trust
    (same content, another signer). rauc checks the new signature with the given keyring and
    the kiosk's purpose rule, hence the small config."""
    key, cert, conf = folder / "key.pem", folder / "cert.pem", folder / "rauc.conf"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "365", "-subj", "/CN=Not a Zizhu signer",
                    "-addext", "extendedKeyUsage=codeSigning"], check=True, capture_output=True)
    conf.write_text(f"[system]\ncompatible=zizhu-kiosk-x86_64\nbootloader=noop\n"
                    f"data-directory={folder / 'rauc'}\n[keyring]\ncheck-purpose=codesign\n")
    foreign = folder / "foreign.raucb"
    subprocess.run(["rauc", "-c", str(conf), f"--keyring={cert}", "resign", "--no-verify",
                    f"--cert={cert}", f"--key={key}", str(bundle), str(foreign)],
                   check=True, capture_output=True)
    return foreign


@pytest.fixture(scope="module")
def container(built_image: BuiltImage) -> Iterator[Container]:
    reason = missing_nspawn()
    if reason:
        pytest.skip(reason)
    with overlay_root(built_image.rootfs, "zizhu-image-nspawn-") as overlay:
        data = overlay.base / "data"
        data.mkdir(mode=0o755)
        add_test_drop_ins(overlay.upper)
        data_folder(overlay.root, data)
        # nspawn mounts /proc, and so binds over it, inside the container: the file is there.
        (overlay.root / CMDLINE_FILE.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (overlay.root / CMDLINE_FILE.lstrip("/")).write_text(CMDLINE)
        foreign = foreign_bundle(built_image.bundle, overlay.base)
        # Mount points for the bundles: the root is read-only once nspawn has it.
        for path in (BUNDLE, FOREIGN_BUNDLE):
            (overlay.root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (overlay.root / path.lstrip("/")).touch()
        booted = Container(overlay.root, options=(
            "--volatile=state", f"--bind={data}:/var/lib/zizhu", "--private-network",
            f"--bind-ro={CMDLINE_FILE}:/proc/cmdline", f"--bind-ro={built_image.bundle}:{BUNDLE}",
            f"--bind-ro={foreign}:{FOREIGN_BUNDLE}"), arguments=CMDLINE.split(),
            log=overlay.base / "console.log",
            # systemd's own lines: the app's are long tracebacks (faulthandler on SIGABRT).
            failure_journal=("-n", "40", "_PID=1"))
        try:
            booted.start().wait_active("zizhu-kiosk.service")
            yield booted
        finally:
            booted.stop()


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
    main = container.prop("zizhu-kiosk.service", "MainPID")
    kiosk = container.run("pgrep", "-P", main, "-x", "kiosk").stdout.split()
    assert kiosk, f"no kiosk process under cage ({main})"
    container.freeze_and_await_watchdog("zizhu-kiosk.service", kiosk[0])


def scrape(container: Container, port: int = 9100) -> str:
    done = container.run("python3", "-c", "import urllib.request as u; print(u.urlopen("
                         f"'http://127.0.0.1:{port}/metrics', timeout=10).read().decode())")
    assert done.returncode == 0, done.stderr
    return done.stdout


def failed_collectors(text: str) -> set[str]:
    return set(re.findall(r'^node_scrape_collector_success\{collector="(\w+)"\} 0$', text,
                          re.M))


def test_node_exporter_serves_the_kiosk_and_health_text_files(container: Container):
    container.wait_active("prometheus-node-exporter.service")
    # The factory config has no back office: the check reports unhealthy, and writes its file.
    container.run("systemctl", "start", "zizhu-health.service")
    assert container.run("test", "-s", "/var/lib/zizhu/metrics/zizhu_health.prom").returncode == 0
    container.wait("the kiosk's metrics file",
                   lambda: container.run("test", "-s", "/var/lib/zizhu/metrics/zizhu_kiosk.prom")
                   .returncode == 0)
    text = scrape(container)
    assert "node_textfile_scrape_error 0" in text.splitlines(), text
    files = set(re.findall(r'^node_textfile_mtime_seconds\{file="([^"]+)"\}', text, re.M))
    assert {"/var/lib/zizhu/metrics/zizhu_kiosk.prom",
            "/var/lib/zizhu/metrics/zizhu_health.prom"} <= files, files
    assert re.search(r"^zizhu_healthy [01]$", text, re.M), text
    assert re.search(r'^zizhu_kiosk_info\{[^}]*\} 1', text, re.M), text  # the app's file


def test_node_exporter_sandbox_costs_no_collector(container: Container):
    """The unit's sandbox against the same binary, user and arguments without it: a collector
    that has nothing to read here (no hwmon, no NFS in a container) fails in both."""
    sandboxed = failed_collectors(scrape(container))
    unit = "test-node-exporter-unconfined"
    started = container.run("systemd-run", f"--unit={unit}", "--uid=prometheus",
                            "/usr/bin/prometheus-node-exporter",
                            "--web.listen-address=127.0.0.1:9199",
                            "--collector.textfile.directory=/var/lib/zizhu/metrics")
    assert started.returncode == 0, started.stderr
    try:
        container.wait("the unconfined node_exporter",
                       lambda: container.run("python3", "-c", "import socket; socket."
                                             "create_connection(('127.0.0.1', 9199))")
                       .returncode == 0)
        unconfined = failed_collectors(scrape(container, 9199))
    finally:
        container.run("systemctl", "stop", unit)
    assert sandboxed <= unconfined, sandboxed - unconfined
    assert "textfile" not in sandboxed
    # timex (adjtimex) fails in both here: nspawn's own seccomp filter forbids the call. The
    # self-test in qemu checks it under the unit's sandbox alone.


def test_node_exporter_listens_on_port_9100_of_every_address(container: Container):
    # /proc/net/tcp6: local address all zeros (::, and IPv4 too) and port 0x238C, state 0A LISTEN.
    table = container.run("cat", "/proc/net/tcp6").stdout
    assert re.search(r"^\s*\d+: 0{32}:238C 0{32}:0000 0A ", table, re.M), table


def test_node_exporter_sees_only_the_metrics_of_the_data_partition(container: Container):
    main = container.prop("prometheus-node-exporter.service", "MainPID")
    assert container.prop("prometheus-node-exporter.service", "User") == "prometheus"
    inside = f"/proc/{main}/root/var/lib"
    assert container.run("ls", inside).stdout.split() == ["zizhu"]
    assert container.run("ls", f"{inside}/zizhu").stdout.split() == ["metrics"]
    assert container.run("test", "-e", f"{inside}/zizhu/kiosk").returncode != 0


def rauc(container: Container, *args: str) -> subprocess.CompletedProcess[str]:
    return container.run("rauc", *args)


def test_rauc_status_reports_slot_a_booted(container: Container):
    done = rauc(container, "status", "--output-format=shell")
    assert done.returncode == 0, done.stderr
    status = dict(re.findall(r"^(\w+)='?([^'\n]*)'?$", done.stdout, re.M))
    assert status["RAUC_SYSTEM_COMPATIBLE"] == "zizhu-kiosk-x86_64"
    assert status["RAUC_SYSTEM_BOOTED_BOOTNAME"] == "a"
    assert status["RAUC_BOOT_PRIMARY"] == "rootfs.0"


def test_rauc_accepts_the_build_bundle_and_refuses_another_signer(container: Container,
                                                                  built_image: BuiltImage):
    """`rauc info` on the kiosk: its system.conf, its keyring, check-purpose=codesign."""
    done = rauc(container, "info", BUNDLE)
    assert done.returncode == 0, done.stderr
    assert "Compatible: \t'zizhu-kiosk-x86_64'" in done.stdout
    release = (built_image.rootfs / "usr/lib/zizhu/image-release").read_text()
    version = re.search(r"^IMAGE_VERSION=(.*)$", release, re.M)
    assert version and f"Version:    \t'{version.group(1)}'" in done.stdout
    assert "Verified inline signature" in done.stderr
    refused = rauc(container, "info", FOREIGN_BUNDLE)
    assert refused.returncode != 0
    assert "signature verification failed" in refused.stderr, refused.stderr


def test_only_root_may_talk_to_rauc(container: Container):
    done = container.run("runuser", "-u", "kiosk", "--", "rauc", "status")
    assert done.returncode != 0
    assert "Rejected send message" in done.stderr, done.stderr
    assert container.run("rauc", "status").returncode == 0  # root may


def test_update_check_leaves_an_ordinary_boot_alone(container: Container):
    container.wait("zizhu-update-check.service to finish",
                   lambda: container.prop("zizhu-update-check.service", "ActiveState")
                   == "active")
    journal = container.run("journalctl", "--no-pager", "-o", "cat", "-u",
                            "zizhu-update-check.service").stdout
    assert "slot a is the default: nothing to decide" in journal, journal


# Last: it reboots the container.
def test_journal_and_machine_id_outlive_a_reboot(container: Container):
    machine_id = container.run("cat", "/etc/machine-id").stdout.strip()
    container.wait("the machine id kept on the data partition",
                   lambda: container.run("cat", "/var/lib/zizhu/machine-id").stdout.strip()
                   == machine_id)
    assert container.run("mountpoint", "-q", "/var/log/journal").returncode == 0
    same = container.run("stat", "-c", "%d", "/var/log/journal", "/var/lib/zizhu").stdout.split()
    assert len(same) == 2 and same[0] == same[1]  # the data partition's folder
    marker = f"zizhu-test-{uuid.uuid4().hex}"
    assert container.run("logger", "-t", "zizhu-test", marker).returncode == 0
    container.wait("the marker in the journal",
                   lambda: marker in container.run("journalctl", "--no-pager", "-o", "cat",
                                                   "-t", "zizhu-test").stdout)
    # What the initrd does on a kiosk: the next boot gets the machine id saved on the data.
    container.options = (*container.options, f"--uuid={machine_id}")
    container.restart().wait_active("zizhu-kiosk.service")
    assert container.run("cat", "/etc/machine-id").stdout.strip() == machine_id
    listed = container.run("journalctl", "--list-boots").stdout
    boots = re.findall(r"^\s*-?\d+ [0-9a-f]{32} ", listed, re.M)
    assert len(boots) >= 2, listed
    before = container.run("journalctl", "--no-pager", "-o", "cat", "-b", "-1",
                           "-t", "zizhu-test").stdout
    assert marker in before
