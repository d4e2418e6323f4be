"""The built image, once per test session: image-build/build.sh with its cache (keyed by the
hash of every input), so a second session with nothing changed reuses the root file system and
the disk image, and a change to the app rebuilds from the venv on.

Set ZIZHU_IMAGE_CACHE to keep the cache elsewhere (default: image-build/.cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
IMAGE_BUILD = PROJECT / "image-build"
KIOSK_UNITS = ("zizhu-kiosk.service", "zizhu-out-of-service.service", "zizhu-backoffice.service",
               "zizhu-health.service", "zizhu-health.timer", "zizhu-kiosk-retry.timer")
# Units the image adds to systemd/ (image-build/overlay), and Debian's units it changes with
# drop-ins there (verified with the drop-ins).
IMAGE_UNITS = ("zizhu-selftest.service", "etc-cups.mount", "var-log-journal.mount",
               "zizhu-save-machine-id.service", "zizhu-update-check.service",
               "prometheus-node-exporter.service", "rauc.service")
# Host tools the build needs, and the Debian package each comes from (scripts/bootstrap.sh).
BUILD_TOOLS = {"mmdebstrap": "mmdebstrap", "veritysetup": "cryptsetup-bin",
               "mkfs.vfat": "dosfstools", "mcopy": "mtools", "sfdisk": "fdisk",
               "mkfs.ext4": "e2fsprogs", "systemd-analyze": "systemd", "rauc": "rauc",
               "mksquashfs": "squashfs-tools", "openssl": "openssl"}


# The first test also waits for the build (minutes from scratch), and a qemu boot without KVM
# takes minutes: above pyproject's 300 s for one test. Each module sets
#   pytestmark = [pytest.mark.image, pytest.mark.timeout(TEST_TIMEOUT_S)]
# (a static mark, so `-m "not image"` deselects them).
TEST_TIMEOUT_S = 2400


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "image: builds and boots the kiosk's disk image")


@dataclass(frozen=True)
class BuiltImage:
    out: Path
    rootfs: Path
    image: Path
    manifest: Path
    roothash: str
    log: str
    bundle: Path  # the signed RAUC bundle of the same root
    slot: Path  # what the bundle holds: root.ext4, root.verity, roothash, kernel and initrd


def missing_build_tool() -> str | None:
    if os.geteuid() != 0:
        return "needs root (mmdebstrap, chroot, mounts)"
    for tool, package in BUILD_TOOLS.items():
        if shutil.which(tool) is None:
            return f"{tool} missing: apt-get install {package} (scripts/bootstrap.sh)"
    return None


@pytest.fixture(scope="session")
def built_image() -> BuiltImage:
    reason = missing_build_tool()
    if reason:
        pytest.skip(reason)
    cache = Path(os.environ.get("ZIZHU_IMAGE_CACHE", IMAGE_BUILD / ".cache"))
    out = cache / "test-out"
    done = subprocess.run(["bash", str(IMAGE_BUILD / "build.sh"), "--out", str(out),
                           "--cache", str(cache)],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        pytest.fail(f"image build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    image = out / "zizhu-kiosk.img"
    return BuiltImage(out=out, rootfs=(out / "rootfs").resolve(), image=image,
                      manifest=out / "zizhu-kiosk.manifest",
                      roothash=Path(f"{image}.roothash").read_text().strip(),
                      log=done.stdout, bundle=out / "zizhu-kiosk.raucb", slot=out / "slot")
