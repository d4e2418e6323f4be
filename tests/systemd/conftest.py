"""Fixtures for the appliance's units: a root file system with the units installed the way the
image build installs them, and a stand-in for systemd's notification socket."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = PROJECT / "systemd"
UNIT_DIR = Path("usr/lib/systemd/system")

# What the image provides at the paths the units name (Debian 12 packages, the app's venv that
# image-build/ installs). A unit that names any other program fails test_units.
IMAGE_EXECUTABLES = {
    "/usr/bin/cage": "Debian package cage",
    "/usr/sbin/seatd": "Debian package seatd (seatd.service runs `seatd`)",
    "/bin/sh": "Debian package dash",
    "/opt/zizhu/venv/bin/kiosk": "the app's venv (image-build/)",
    "/opt/zizhu/venv/bin/kiosk-backoffice": "the app's venv (image-build/)",
    "/usr/libexec/zizhu/health-check": "systemd/install.sh",
}

# Debian 12's seatd.service (seatd 0.7.0-6), for hosts without the package: the drop-in
# systemd/system/seatd.service.d/ is verified against it.
DEBIAN_SEATD_SERVICE = """\
[Unit]
Description=Seat management daemon

[Service]
Type=simple
ExecStart=seatd -g video
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


def build_image_root(root: Path) -> Path:
    """A root file system as far as systemd's offline tools look: this host's vendor units
    (Debian 12's systemd, cups, pcscd), its passwd/group, stand-ins for the programs the image
    has, and then systemd/install.sh run on it exactly as the image build runs it."""
    shutil.copytree("/usr/lib/systemd/system", root / UNIT_DIR, symlinks=True)
    if not (root / UNIT_DIR / "seatd.service").exists():
        (root / UNIT_DIR / "seatd.service").write_text(DEBIAN_SEATD_SERVICE)
    (root / "etc").mkdir()
    for name in ("passwd", "group"):
        shutil.copy(f"/etc/{name}", root / "etc" / name)
    for path, provider in IMAGE_EXECUTABLES.items():
        stub = root / path.lstrip("/")
        if provider != "systemd/install.sh" and not stub.exists():
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
    subprocess.run(["bash", str(SYSTEMD_DIR / "install.sh"), "--root", str(root)],
                   check=True, capture_output=True, text=True)
    return root


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze missing: apt-get install systemd")
    return build_image_root(tmp_path_factory.mktemp("rootfs"))


class NotifyListener:
    """A unix datagram socket where the tests play systemd: NOTIFY_SOCKET points here, and
    each message comes with the sender's PID (SCM_CREDENTIALS), as systemd receives it."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(self.path))
        self.path.chmod(0o666)  # the kiosk under cage runs as another user
        self.messages: list[tuple[str, int]] = []

    def receive(self, timeout: float) -> tuple[str, int] | None:
        self.sock.settimeout(timeout)
        try:
            data, ancillary, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except TimeoutError:
            return None
        pid = 0
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        message = (data.decode(), pid)
        self.messages.append(message)
        return message

    def wait_for(self, text: str, timeout: float = 60) -> tuple[str, int]:
        """The first message with a line equal to ``text`` (a datagram may carry several
        newline-separated assignments, as sd_notify allows)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and text in message[0].split("\n"):
                return message
        raise AssertionError(f"no {text!r} within {timeout:g} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


@pytest.fixture
def notify_listener() -> Iterator[NotifyListener]:
    # Not tmp_path: pytest's folders are 0700 root, and the kiosk under cage runs as nobody.
    directory = Path(tempfile.mkdtemp(prefix="zizhu-notify-"))
    directory.chmod(0o755)
    listener = NotifyListener(directory)
    try:
        yield listener
    finally:
        listener.close()
        shutil.rmtree(directory, ignore_errors=True)


def stop_process_group(process: subprocess.Popen[str]) -> None:
    """End a child started with start_new_session=True and everything it started."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
    else:
        try:
            os.killpg(process.pid, 9)  # stragglers (Xwayland) in the group
        except ProcessLookupError:
            pass
