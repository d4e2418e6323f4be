"""The RAUC update bundle next to the image, checked on the build host: it holds exactly slot
A's root and hash tree as the disk image has them, its hook writes the other slot's kernel,
initrd and boot entries with the bundle's root hash, and the boot loader backend reads the
slots from systemd-boot's variables. The signature against the image's keyring and RAUC on
the image are checked in test_nspawn_boot.py (the image's own rauc and system.conf)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.image.conftest import IMAGE_BUILD, TEST_TIMEOUT_S, BuiltImage

pytestmark = [pytest.mark.image, pytest.mark.timeout(TEST_TIMEOUT_S)]
BACKEND = IMAGE_BUILD / "rauc/rauc-bootloader"
LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"


def bundle_info(bundle: Path) -> str:
    done = subprocess.run(["rauc", "info", "--no-verify", str(bundle)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def image_checksums(info: str) -> dict[str, tuple[str, int]]:
    """{slot class: (sha256, size)} of each image in `rauc info`'s listing."""
    found = re.findall(r"\[(\w+)\].*?Checksum:\s+([0-9a-f]{64}).*?Size:\s+(\d+)", info, re.S)
    return {name: (digest, int(size)) for name, digest, size in found}


def partition(image: Path, name: str) -> tuple[int, int]:
    """(offset, size) in bytes of the partition with this GPT name."""
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True,
                                      text=True, check=True).stdout)
    found = next(p for p in table["partitiontable"]["partitions"] if p["name"] == name)
    return int(found["start"]) * 512, int(found["size"]) * 512


def sha256_of_range(path: Path, offset: int, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        f.seek(offset)
        left = size
        while left:
            chunk = f.read(min(left, 8 << 20))
            assert chunk, f"{path} ends before {offset + size}"
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def test_bundle_holds_the_root_and_hash_tree_of_slot_a(built_image: BuiltImage):
    info = bundle_info(built_image.bundle)
    assert "Compatible: \t'zizhu-kiosk-x86_64'" in info
    assert "Bundle Format: \tverity" in info
    images = image_checksums(info)
    assert set(images) == {"rootfs", "verity"}, info
    for slot_class, label in (("rootfs", "root-a"), ("verity", "root-a-verity")):
        digest, size = images[slot_class]
        offset, room = partition(built_image.image, label)
        assert size <= room  # it fits the other slot's partition, which has the same size
        assert sha256_of_range(built_image.image, offset, size) == digest, label


def host_config(root: Path, folder: Path) -> Path:
    """The image's system.conf for `rauc` on this host: its [system] identity and its
    [keyring] rules (check-purpose, signing time), with state kept in ``folder``."""
    conf = (root / "etc/rauc/system.conf").read_text()
    keyring = re.search(r"^\[keyring\]\n(.*?)(?=^\[)", conf, re.M | re.S)
    assert keyring, conf
    rules = [line for line in keyring.group(1).splitlines()
             if line and not line.startswith(("#", "path="))]
    compatible = re.search(r"^compatible=(.*)$", conf, re.M)
    assert compatible
    path = folder / "system.conf"
    path.write_text(f"[system]\ncompatible={compatible.group(1)}\nbootloader=noop\n"
                    f"data-directory={folder / 'rauc'}\n[keyring]\n" + "\n".join(rules) + "\n")
    return path


def test_bundle_verifies_against_the_keyring_in_the_image(built_image: BuiltImage,
                                                          tmp_path: Path):
    keyring = built_image.rootfs / "etc/rauc/keyring.pem"
    done = subprocess.run(["rauc", "-c", str(host_config(built_image.rootfs, tmp_path)),
                           f"--keyring={keyring}", "info", str(built_image.bundle)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Verified inline signature" in done.stderr
    # The chain in the signature ends at the CA the image trusts, which the manifest names.
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "oneline",
                              "-in", str(keyring)], capture_output=True, text=True, check=True)
    assert subject.stdout.split("=", 1)[1].strip() in done.stdout, done.stdout
    fingerprint = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256",
                                  "-in", str(keyring)], capture_output=True, text=True,
                                 check=True).stdout.strip().split("=", 1)[1]
    manifest = built_image.manifest.read_text()
    update = manifest[manifest.index("[update]"):]
    assert f"keyring_sha256 = {fingerprint}" in update
    assert re.search(r"^keys = (development|given)$", update, re.M)


def extract(bundle: Path, into: Path, *names: str) -> Path:
    """Files of the bundle's payload (a squashfs image followed by its verity tree)."""
    subprocess.run(["unsquashfs", "-q", "-n", "-d", str(into), str(bundle), *names],
                   check=True, capture_output=True, timeout=120)
    return into


def test_hook_puts_the_new_slot_on_the_esp(built_image: BuiltImage, tmp_path: Path):
    content = extract(built_image.bundle, tmp_path / "bundle", "hook", "boot-entries",
                      "boot.env", "vmlinuz", "initrd.img")
    esp = tmp_path / "esp"
    (esp / "loader/entries").mkdir(parents=True)
    running = esp / "loader/entries/zizhu-a.conf"
    running.write_text("the running slot's entry\n")
    env = {"PATH": os.environ["PATH"], "RAUC_BUNDLE_MOUNT_POINT": str(content),
           "RAUC_SLOT_CLASS": "rootfs", "RAUC_SLOT_BOOTNAME": "b", "ZIZHU_ESP": str(esp)}
    done = subprocess.run(["sh", str(content / "hook"), "slot-post-install"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    slot = built_image.slot
    assert (esp / "zizhu/b/vmlinuz").read_bytes() == (slot / "vmlinuz").read_bytes()
    assert (esp / "zizhu/b/initrd.img").read_bytes() == (slot / "initrd.img").read_bytes()
    assert running.read_text() == "the running slot's entry\n"  # never touched
    assert sorted(p.name for p in (esp / "loader/entries").iterdir()) == [
        "zizhu-a.conf", "zizhu-b-selftest.conf", "zizhu-b.conf"]
    for name in ("zizhu-b.conf", "zizhu-b-selftest.conf"):
        text = (esp / "loader/entries" / name).read_text()
        assert "linux /zizhu/b/vmlinuz\n" in text and "initrd /zizhu/b/initrd.img\n" in text
        options = next(line for line in text.splitlines() if line.startswith("options ")).split()
        assert f"roothash={built_image.roothash}" in options
        assert "systemd.verity_root_data=/dev/disk/by-partlabel/root-b" in options
        assert "systemd.verity_root_hash=/dev/disk/by-partlabel/root-b-verity" in options
        assert "rauc.slot=b" in options and "systemd.volatile=state" in options
    assert not list(esp.rglob("*.new"))
    # The other hooks RAUC calls are no business of this one.
    other = subprocess.run(["sh", str(content / "hook"), "slot-install"], env=env)
    assert other.returncode == 0


def test_slot_b_entries_are_slot_a_entries_with_another_letter(built_image: BuiltImage,
                                                               tmp_path: Path):
    """disk.sh and the hook share boot-entries: slot A's entries on the image's ESP are what
    the script writes for slot A."""
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    content = extract(built_image.bundle, tmp_path / "bundle", "boot-entries", "boot.env")
    subprocess.run(["sh", "-c", f'. "{content}/boot.env" && export ZIZHU_CMDLINE_BASE '
                    f'ZIZHU_CMDLINE_KIOSK ZIZHU_CMDLINE_SELFTEST && sh "{content}/boot-entries"'
                    f' a "$ROOTHASH" "$VERSION" "{tmp_path}"'], check=True, env=env)
    offset, _ = partition(built_image.image, "esp")
    for name in ("zizhu-a.conf", "zizhu-a-selftest.conf"):
        on_esp = subprocess.run(["mtype", "-i", f"{built_image.image}@@{offset}",
                                 f"::/loader/entries/{name}"], env=env, capture_output=True,
                                text=True, check=True).stdout
        assert on_esp == (tmp_path / name).read_text()


def efivar(folder: Path, name: str, entry: str) -> None:
    """A systemd-boot variable as efivarfs shows it: 4 bytes of attributes, then UTF-16LE."""
    (folder / f"{name}-{LOADER_GUID}").write_bytes(b"\x07\x00\x00\x00"
                                                   + f"{entry}\0".encode("utf-16-le"))


def backend(tmp_path: Path, *args: str, cmdline: str = "ro rauc.slot=a quiet"
            ) -> subprocess.CompletedProcess[str]:
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    env = {"PATH": os.environ["PATH"], "ZIZHU_ESP": str(tmp_path / "esp"),
           "ZIZHU_EFIVARS": str(tmp_path / "efivars"), "ZIZHU_RAUC_STATE": str(tmp_path / "state"),
           "ZIZHU_CMDLINE_FILE": str(tmp_path / "cmdline")}
    return subprocess.run(["sh", str(BACKEND), *args], env=env, capture_output=True, text=True)


def test_backend_reads_the_slots_from_systemd_boot(tmp_path: Path):
    (tmp_path / "esp/loader").mkdir(parents=True)
    (tmp_path / "efivars").mkdir()
    (tmp_path / "esp/loader/loader.conf").write_text("default zizhu-a.conf\ntimeout 0\n")
    assert backend(tmp_path, "get-primary").stdout == "a\n"
    assert backend(tmp_path, "get-current", cmdline="ro rauc.slot=b").stdout == "b\n"
    # An update's trial: b once (LoaderEntryOneShot), a still the default.
    efivar(tmp_path / "efivars", "LoaderEntryOneShot", "zizhu-b.conf")
    assert backend(tmp_path, "get-primary").stdout == "b\n"
    assert backend(tmp_path, "get-default").stdout == "a\n"
    # Marked good: b is the default (LoaderEntryDefault wins over loader.conf).
    (tmp_path / f"efivars/LoaderEntryOneShot-{LOADER_GUID}").unlink()
    efivar(tmp_path / "efivars", "LoaderEntryDefault", "zizhu-b.conf")
    assert backend(tmp_path, "get-primary").stdout == "b\n"
    assert backend(tmp_path, "get-default").stdout == "b\n"


def test_backend_keeps_a_bad_mark_until_the_slot_is_written_again(tmp_path: Path):
    assert backend(tmp_path, "get-state", "b").stdout == "good\n"
    assert backend(tmp_path, "set-state", "b", "bad").returncode == 0
    assert backend(tmp_path, "get-state", "b").stdout == "bad\n"
    assert backend(tmp_path, "get-state", "a").stdout == "good\n"
    refused = backend(tmp_path, "get-state", "c")
    assert refused.returncode == 2 and "no slot 'c'" in refused.stderr
    # set-primary needs the slot's entry on the ESP: nothing is booted that is not there.
    (tmp_path / "esp/loader/entries").mkdir(parents=True)
    missing = backend(tmp_path, "set-primary", "b")
    assert missing.returncode == 1 and "no entry zizhu-b.conf" in missing.stderr
    assert backend(tmp_path, "get-state", "b").stdout == "bad\n"
