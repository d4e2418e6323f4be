"""The built root file system and disk image, checked without booting: the units as systemd's
offline tools see them on the image's own systemd, what must and must not be in the image,
the partition table, the boot entries, and the manifest."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.image.conftest import (
    IMAGE_BUILD,
    IMAGE_UNITS,
    KIOSK_UNITS,
    TEST_TIMEOUT_S,
    BuiltImage,
)

pytestmark = [pytest.mark.image, pytest.mark.timeout(TEST_TIMEOUT_S)]
UNIT_DIR = "usr/lib/systemd/system"


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args, f"--root={root}"],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("unit", KIOSK_UNITS + IMAGE_UNITS)
def test_unit_verifies_on_the_built_root_without_any_message(built_image: BuiltImage, unit):
    # verify exits 0 on an unknown key such as WatchdogSecs=, so any output is a failure.
    done = analyze(built_image.rootfs, "verify", f"/{UNIT_DIR}/{unit}")
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_verify_would_report_a_broken_unit_on_this_root(built_image: BuiltImage):
    """The negative control: the same call on the same root speaks up for a misspelt key.
    The unit has to be inside the root; /run is empty in the image and stays so."""
    runtime = built_image.rootfs / "run/systemd/system"
    broken = runtime / "zizhu-broken.service"
    runtime.mkdir(parents=True, exist_ok=True)
    try:
        broken.write_text("[Service]\nExecStart=/opt/zizhu/venv/bin/kiosk run\nWatchdogSecs=3\n")
        done = analyze(built_image.rootfs, "verify", "/run/systemd/system/zizhu-broken.service")
    finally:
        shutil.rmtree(built_image.rootfs / "run/systemd")
    assert "WatchdogSecs" in done.stdout + done.stderr


def test_kiosk_exposure_is_below_2_5(built_image: BuiltImage):
    done = analyze(built_image.rootfs, "security", "--offline=yes", "--no-pager",
                   f"/{UNIT_DIR}/zizhu-kiosk.service")
    found = re.search(r"Overall exposure level for zizhu-kiosk\.service: (\d+\.\d)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) < 2.5


def test_image_units_are_enabled(built_image: BuiltImage):
    etc = built_image.rootfs / "etc/systemd/system"
    assert (etc / "graphical.target.wants/zizhu-kiosk.service").is_symlink()
    assert (etc / "multi-user.target.wants/zizhu-selftest.service").is_symlink()
    assert (etc / "default.target").resolve().name == "graphical.target"
    assert (etc / "getty@tty1.service").resolve() == Path("/dev/null")
    assert (etc / "multi-user.target.wants/prometheus-node-exporter.service").is_symlink()
    assert (etc / "sysinit.target.wants/zizhu-save-machine-id.service").is_symlink()
    assert (etc / "graphical.target.wants/zizhu-update-check.service").is_symlink()


def dpkg_installed(root: Path) -> set[str]:
    done = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f",
                           "${Package} ${db:Status-Status}\n"],
                          capture_output=True, text=True, check=True)
    return {line.split()[0] for line in done.stdout.splitlines()
            if line.split()[1:] == ["installed"]}


def test_image_has_what_the_units_need_and_nothing_it_must_not(built_image: BuiltImage):
    root = built_image.rootfs
    packages = dpkg_installed(root)
    for needed in ("cage", "seatd", "xwayland", "pcscd", "cups-daemon", "python3",
                   "fonts-wqy-microhei", "linux-image-amd64", "dracut", "systemd-boot-efi",
                   "prometheus-node-exporter", "rauc", "rauc-service"):
        assert needed in packages
    # node_exporter's Recommends stay out: the collectors' scripts and what they pull in.
    for unwanted in ("vsmartcard-vpcd", "openssh-server", "gcc", "gcc-12", "cpp", "make",
                     "initramfs-tools", "python3-dev", "prometheus-node-exporter-collectors",
                     "smartmontools", "moreutils", "squashfs-tools"):
        assert unwanted not in packages
    for tool in ("usr/bin/gcc", "usr/bin/cc", "usr/sbin/sshd", "usr/bin/vpcd"):
        assert not (root / tool).exists()
    # bootctl: RAUC's boot loader backend sets systemd-boot's variables with it.
    for program in ("usr/bin/cage", "opt/zizhu/venv/bin/kiosk",
                    "opt/zizhu/venv/bin/kiosk-backoffice", "usr/libexec/zizhu/health-check",
                    "usr/bin/rauc", "usr/bin/bootctl", "usr/bin/prometheus-node-exporter"):
        assert (root / program).is_file()


def test_app_is_the_project_wheel_in_the_venv(built_image: BuiltImage):
    done = subprocess.run(["chroot", str(built_image.rootfs), "/opt/zizhu/venv/bin/python", "-c",
                           "import importlib.metadata as m, kiosk, sys;"
                           "print(m.version('zizhu'), kiosk.__file__, sys.prefix)"],
                          capture_output=True, text=True, check=True)
    version, where, prefix = done.stdout.split()
    assert version == "0.1.0" and prefix == "/opt/zizhu/venv"
    assert where.startswith("/opt/zizhu/venv/lib/python3.11/site-packages/kiosk/")


def test_no_package_caches_and_no_passwords(built_image: BuiltImage):
    root = built_image.rootfs
    assert not list((root / "var/lib/apt/lists").glob("*_Packages"))
    assert not list((root / "var/cache/apt/archives").glob("*.deb"))
    assert not (root / "root/.cache/pip").exists()
    shadow = {line.split(":")[0]: line.split(":")[1]
              for line in (root / "etc/shadow").read_text().splitlines()}
    # "*" or "!...": no password can log in; "" would let anyone in without one.
    assert all(field == "*" or field.startswith("!") for field in shadow.values()), (
        "an account has a password or none at all")
    assert shadow["root"] == "*"


def test_debian_sources_include_updates_and_security(built_image: BuiltImage):
    sources = (built_image.rootfs / "etc/apt/sources.list").read_text()
    for suite in ("bookworm main", "bookworm-updates main", "bookworm-security main"):
        assert suite in sources


def test_read_only_root_settings(built_image: BuiltImage):
    root = built_image.rootfs
    assert (root / "etc/machine-id").read_text() == ""
    fstab = (root / "etc/fstab").read_text()
    assert re.search(r"^PARTLABEL=zizhu-data\s+/var/lib/zizhu\s+ext4\s+\S*x-systemd\.growfs",
                     fstab, re.M)
    assert (root / "efi").is_dir() and (root / "var/lib/zizhu").is_dir()


def test_cups_queues_are_baked_in_with_abort_job(built_image: BuiltImage):
    factory = built_image.rootfs / "usr/share/zizhu/factory/cups"
    printers = (factory / "printers.conf").read_text()
    queues = re.findall(r"^<(?:Default)?Printer (\S+)>", printers, re.M)
    assert sorted(queues) == ["zizhu-a4", "zizhu-receipt"]
    assert printers.count("ErrorPolicy abort-job") == 2
    assert (factory / "ppd/zizhu-a4.ppd").is_file()
    tmpfiles = (built_image.rootfs / "usr/lib/tmpfiles.d/zizhu-image.conf").read_text()
    assert "C /var/lib/zizhu/cups - - - - /usr/share/zizhu/factory/cups" in tmpfiles


def partitions(image: Path) -> list[dict[str, object]]:
    done = subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)["partitiontable"]["partitions"]


def test_partition_table_has_esp_two_root_slots_and_data(built_image: BuiltImage):
    table = partitions(built_image.image)
    names = [p["name"] for p in table]
    assert names == ["esp", "root-a", "root-a-verity", "root-b", "root-b-verity", "zizhu-data"]
    by_name = {p["name"]: p for p in table}
    assert by_name["esp"]["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    for slot in ("a", "b"):
        assert by_name[f"root-{slot}"]["type"] == "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
        assert by_name[f"root-{slot}-verity"]["type"] == "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5"
    assert by_name["root-a"]["size"] == by_name["root-b"]["size"]
    assert by_name["root-a-verity"]["size"] == by_name["root-b-verity"]["size"]
    assert table[-1]["name"] == "zizhu-data"  # last, so it can grow to the end of the disk


def esp_file(image: Path, path: str) -> str:
    esp = partitions(image)[0]
    done = subprocess.run(["mtype", "-i", f"{image}@@{int(esp['start']) * 512}", f"::{path}"],
                          capture_output=True, text=True, check=True,
                          env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    return done.stdout


def test_boot_entries_name_the_verity_root_of_slot_a(built_image: BuiltImage):
    loader = esp_file(built_image.image, "/loader/loader.conf")
    assert "default zizhu-a.conf" in loader
    assert re.search(r"^editor no$", loader, re.M)  # no init=/bin/sh from the boot menu
    for entry in ("zizhu-a.conf", "zizhu-a-selftest.conf"):
        options = next(line for line in esp_file(built_image.image, f"/loader/entries/{entry}")
                       .splitlines() if line.startswith("options "))
        assert f"roothash={built_image.roothash}" in options.split()
        assert "root=/dev/mapper/root" in options.split()
        assert "systemd.verity_root_data=/dev/disk/by-partlabel/root-a" in options.split()
        assert "systemd.volatile=state" in options.split() and "ro" in options.split()
    assert "zizhu.selftest=1" in esp_file(built_image.image,
                                          "/loader/entries/zizhu-a-selftest.conf")


def test_manifest_lists_packages_wheels_with_hashes_and_inputs(built_image: BuiltImage):
    text = built_image.manifest.read_text()
    sections = dict(re.findall(r"^\[([a-z-]+)\][^\n]*\n(.*?)(?=^\[|\Z)", text, re.M | re.S))
    assert {"image", "inputs", "debian-packages", "python-wheels", "pip-freeze"} <= set(sections)
    packages = dict(line.split()[:2] for line in sections["debian-packages"].splitlines() if line)
    assert set(packages) == dpkg_installed(built_image.rootfs)
    assert "cage" in packages and "linux-image-amd64" in packages
    wheels = sections["python-wheels"].split("\n")
    assert any(line.startswith("zizhu==0.1.0 --hash=sha256:") for line in wheels)
    # The hashes are those of the wheel files the venv was installed from.
    cache = built_image.out.parent / "wheels"
    for wheel in cache.glob("*.whl"):
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert f"--hash=sha256:{digest}" in sections["python-wheels"], wheel.name
    assert re.search(r"^GIT_COMMIT=[0-9a-f]{40}$", sections["image"], re.M)
    assert f"ROOTHASH={built_image.roothash}" in sections["image"]
    assert re.search(r"^mmdebstrap = \d", sections["inputs"], re.M)
    assert "zizhu==0.1.0" in sections["pip-freeze"]


def test_checksums_match_the_image_and_manifest(built_image: BuiltImage):
    done = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"],
                          cwd=built_image.out, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "zizhu-kiosk.img: OK" in done.stdout


def test_node_exporter_exposure_is_below_2_5(built_image: BuiltImage):
    done = analyze(built_image.rootfs, "security", "--offline=yes", "--no-pager",
                   f"/{UNIT_DIR}/prometheus-node-exporter.service")
    found = re.search(r"Overall exposure level for prometheus-node-exporter\.service: "
                      r"(\d+\.\d)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) < 2.5


def test_rauc_is_configured_with_the_keyring_and_backend(built_image: BuiltImage):
    root = built_image.rootfs
    assert (root / "etc/rauc/system.conf").read_text() == (
        IMAGE_BUILD / "rauc/system.conf").read_text()
    assert (root / "usr/libexec/zizhu/rauc-bootloader").read_bytes() == (
        IMAGE_BUILD / "rauc/rauc-bootloader").read_bytes()
    assert (root / "usr/libexec/zizhu/rauc-bootloader").stat().st_mode & 0o111
    keyring = (root / "etc/rauc/keyring.pem").read_text()
    assert "BEGIN CERTIFICATE" in keyring and "PRIVATE KEY" not in keyring
    # The signing keys stay on the build host, and no private key at all is in the image
    # (every kiosk written from it would share it; ssl-cert's snakeoil key is removed).
    for folder in ("etc", "usr/libexec", "usr/share/zizhu", "opt/zizhu"):
        found = subprocess.run(["grep", "-rlIx", "--", "-----BEGIN .*PRIVATE KEY-----",
                                str(root / folder)],
                               capture_output=True, text=True)
        assert found.stdout == "", found.stdout
    # Only root may talk to RAUC over D-Bus (Debian's policy lets every user).
    policy = (root / "etc/dbus-1/system.d/zizhu-rauc.conf").read_text()
    assert '<deny send_destination="de.pengutronix.rauc"/>' in policy


def test_journal_is_persistent_on_the_data_partition(built_image: BuiltImage):
    root = built_image.rootfs
    journald = (root / "usr/lib/systemd/journald.conf.d/zizhu.conf").read_text()
    assert re.search(r"^Storage=persistent$", journald, re.M)
    assert re.search(r"^SystemMaxUse=\d+M$", journald, re.M)
    mount = (root / f"{UNIT_DIR}/var-log-journal.mount").read_text()
    assert "What=/var/lib/zizhu/journal" in mount and "Where=/var/log/journal" in mount


def test_initrd_brings_the_saved_machine_id(built_image: BuiltImage):
    kernel = next((built_image.rootfs / "usr/lib/modules").iterdir()).name
    done = subprocess.run(["chroot", str(built_image.rootfs), "lsinitrd",
                           f"/boot/initrd.img-{kernel}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "etc/systemd/system/initrd.target.wants/zizhu-machine-id.service" in done.stdout
    assert "usr/libexec/zizhu-machine-id" in done.stdout
