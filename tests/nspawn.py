"""A root file system booted with systemd-nspawn, for the tests that need a running systemd
(tests/systemd on this machine's own root, tests/image on the built image's root). PID 1 here
is not systemd; in the container it is.

- ``overlay_root(lower)`` mounts a writable overlay over ``lower`` (upper layer on a tmpfs), so
  a test can add drop-ins without changing the tree it boots; everything is unmounted and
  removed at the end.
- ``Container(root, options)`` boots it (``start``), runs commands inside (``run``: nsenter
  into PID 1's namespaces), waits for a condition with the journal in the failure message
  (``wait``), powers it off (``stop``) and can boot it again on the same tree (``restart``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

POWEROFF_TIMEOUT_S = 30


def missing_nspawn() -> str | None:
    """Why a container cannot be booted here, or None."""
    if os.geteuid() != 0:
        return "needs root (overlay mount, systemd-nspawn)"
    for tool, package in (("systemd-nspawn", "systemd-container"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            return f"{tool} missing: apt-get install {package} (scripts/bootstrap.sh)"
    return None


@dataclass(frozen=True)
class Overlay:
    base: Path  # a private temporary folder: the layers, the mount point, logs, test data
    root: Path  # the merged tree to boot
    upper: Path  # what the test wrote over the lower tree


@contextmanager
def overlay_root(lower: Path, prefix: str, size: str = "256M") -> Iterator[Overlay]:
    """``lower`` seen through an overlay whose upper layer is a tmpfs of ``size``. Raises
    OSError with mount's message when the kernel refuses the overlay."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    layers, root = base / "layers", base / "root"
    layers.mkdir()
    root.mkdir()
    mounted: list[Path] = []
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(layers)],
                       check=True, capture_output=True)
        mounted.append(layers)
        (layers / "upper").mkdir()
        (layers / "work").mkdir()
        done = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={lower},upperdir={layers / 'upper'},workdir={layers / 'work'}",
             str(root)], capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(f"cannot mount an overlay of {lower}: {done.stderr.strip()}")
        mounted.append(root)
        yield Overlay(base=base, root=root, upper=layers / "upper")
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


class Container:
    """``systemd-nspawn --boot`` of ``root`` with the given nspawn ``options`` and kernel-style
    ``arguments`` for the container's systemd (``systemd.unit=...``). Not registered with
    machined and kept in the caller's cgroup: the host's PID 1 need not be systemd."""

    def __init__(self, root: Path, options: Sequence[str] = (), arguments: Sequence[str] = (),
                 log: Path | None = None, failure_journal: Sequence[str] = ("-n", "60")) -> None:
        self.root = root
        self.options = tuple(options)
        self.arguments = tuple(arguments)
        self.log = log or root.parent / "console.log"
        self.failure_journal = tuple(failure_journal)
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0
        self.boots = 0

    def start(self) -> Container:
        with self.log.open("a") as out:
            out.write(f"--- boot {self.boots + 1}\n")
            out.flush()
            self.nspawn = subprocess.Popen(
                ["systemd-nspawn", "-D", str(self.root), "--boot", "--register=no",
                 "--keep-unit", "--console=pipe", *self.options, "--", *self.arguments],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.boots += 1
        self.leader = self._leader(self.nspawn)
        return self

    def _leader(self, nspawn: subprocess.Popen[bytes]) -> int:
        """The container's PID 1 as the host sees it: nspawn's only child."""
        children = Path(f"/proc/{nspawn.pid}/task/{nspawn.pid}/children")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if children.exists() and children.read_text().split():
                return int(children.read_text().split()[0])
            if nspawn.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"systemd-nspawn did not start a container:\n"
                             f"{self.log.read_text(errors='replace')[-2000:]}")

    def run(self, *command: str, check: bool = False,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "-t", str(self.leader), "-a", *command],
                              capture_output=True, text=True, timeout=timeout, check=check)

    def prop(self, unit: str, name: str) -> str:
        return self.run("systemctl", "show", "-p", name, "--value", unit).stdout.strip()

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                journal = self.run("journalctl", "--no-pager", *self.failure_journal).stdout
                raise AssertionError(f"timed out waiting for {what}; journal ends:\n{journal}")
            time.sleep(0.25)

    def wait_active(self, unit: str, timeout: float = 120) -> None:
        self.wait(f"{unit} to be active",
                  lambda: self.prop(unit, "ActiveState") == "active", timeout)

    def freeze_and_await_watchdog(self, unit: str, pid: str) -> None:
        """SIGSTOP ``pid`` (the process that pings ``unit``'s watchdog) and wait until systemd
        has restarted the unit for the missed pings and it is active again."""
        before = int(self.prop(unit, "NRestarts"))
        assert self.run("kill", "-STOP", pid).returncode == 0, f"cannot stop {pid}"
        self.wait("a watchdog restart", lambda: int(self.prop(unit, "NRestarts")) > before)
        journal = self.run("journalctl", "--no-pager", "-u", unit).stdout
        assert "Watchdog timeout" in journal
        self.wait(f"{unit} to be active again", lambda: self.prop(unit, "ActiveState") == "active")

    def stop(self) -> None:
        """A clean poweroff (units stop, journald flushes), nspawn killed if it hangs."""
        nspawn = self.nspawn
        if nspawn is None:
            return
        if nspawn.poll() is None:
            self.run("systemctl", "poweroff")
            try:
                nspawn.wait(timeout=POWEROFF_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(nspawn.pid, 9)
                nspawn.wait()
        self.nspawn = None

    def restart(self) -> Container:
        self.stop()
        return self.start()
