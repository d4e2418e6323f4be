"""pcscd with the vsmartcard virtual reader (vpcd) as a test peer, plus pytest fixtures.

On a fresh Debian 12 machine (scripts/bootstrap.sh installed ``pcscd`` and
``vsmartcard-vpcd``) nothing runs: :class:`Pcscd` starts ``pcscd --foreground`` itself,
which loads ``/etc/reader.conf.d/vpcd`` and so offers ``Virtual PCD 00 00`` (TCP 35963) and
``Virtual PCD 00 01`` (35964), and stops it at the end. If a pcscd already answers on
``/run/pcscd/pcscd.comm`` (a systemd socket-activated system daemon) there can be only one,
so that one is used as it is, provided it has the vpcd readers; tests that need to stop
pcscd are then skipped (``Pcscd.managed`` is False).

A pcscd we start dies with the test process (``setpriv --pdeathsig``) and, should that ever
fail, exits by itself a minute after its last client (``--auto-exit``); a context held open
while it runs keeps it from doing so mid-session.

Tests that use pcscd hold a lock file (``PcscdRunLock``) for their duration, so that two
pytest runs on one machine take turns instead of inserting cards into each other's tests.

Use from a test module (or once, for every module, from tests/conftest.py)::

    pytest_plugins = ["tests.peers.pcscd"]

    def test_x(pcscd, vpcd_card_factory):
        client = vpcd_card_factory(MyCard())   # inserted, and pcscd has seen it
        with PcscLink(pcscd.reader) as link: ...
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from smartcard import scard

from tests.peers.vpcd_card import VirtualCard, VirtualCardClient

VPCD_CONFIG = Path("/etc/reader.conf.d/vpcd")
VPCD_READERS = ("Virtual PCD 00 00", "Virtual PCD 00 01")
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
PCSCD_PIDFILE = Path("/run/pcscd/pcscd.pid")
DEFAULT_VPCD_PORT = 35963
LOCK_PATH = Path(tempfile.gettempdir()) / "zizhu-pcscd-tests.lock"


class PcscdUnavailable(RuntimeError):
    """pcscd or vpcd cannot be brought up; the message says what to install or fix."""


def vpcd_port(config: Path = VPCD_CONFIG) -> int:
    """The TCP port vpcd listens on for slot 0, from ``DEVICENAME /dev/null:<port>``."""
    match = re.search(r"^\s*DEVICENAME\s+\S*?:(\S+)", config.read_text(), re.MULTILINE)
    return int(match.group(1), 0) if match else DEFAULT_VPCD_PORT


def socket_answers(path: Path = PCSCD_SOCKET) -> bool:
    """Whether something (pcscd or systemd holding its socket) accepts PC/SC clients."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _pid_is_pcscd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "pcscd"
    except OSError:
        return False


class Pcscd:
    """The pcscd the tests talk to; ``start``/``stop``/``restart`` only when ``managed``."""

    def __init__(self, log_path: Path, *, config: Path = VPCD_CONFIG) -> None:
        self.log_path = log_path
        self.config = config
        self.port = vpcd_port(config) if config.exists() else DEFAULT_VPCD_PORT
        self.reader = VPCD_READERS[0]
        self.readers = VPCD_READERS
        self.managed = False
        self.process: subprocess.Popen[bytes] | None = None
        self._keeper: int | None = None  # a context held open: no --auto-exit mid-session

    # -- bring up -------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> Pcscd:
        """Start our own pcscd, or adopt the one already answering; return once the vpcd
        readers are listed and vpcd accepts cards."""
        if self.running:
            return self
        self.stop()  # reap ours if it died, drop a context held on a vanished daemon
        if not self.config.exists():
            raise PcscdUnavailable(f"{self.config} missing: apt-get install vsmartcard-vpcd "
                                   "(scripts/bootstrap.sh does)")
        if socket_answers():
            self.managed = False  # the system's, or another test run's: use, never stop
        else:
            self._launch()
        try:
            self.wait_for_readers(timeout)
        except PcscdUnavailable:
            self.stop()
            raise
        self._hold()
        return self

    def _launch(self) -> None:
        binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
        if not Path(binary).exists():
            raise PcscdUnavailable("pcscd not installed: apt-get install pcscd")
        if _listening(self.port, unknown=False):
            raise PcscdUnavailable(f"TCP port {self.port} is taken but pcscd is not running; "
                                   "vpcd could not listen there")
        self._clear_stale_files()
        command = [binary, "--foreground", "--auto-exit"]
        setpriv = shutil.which("setpriv")
        if setpriv:
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        self.managed = True

    def _clear_stale_files(self) -> None:
        # A pcscd killed with SIGKILL leaves its socket and pid file; pcscd cleans them up
        # itself unless the pid has been reused by another process, which makes it refuse.
        try:
            pid = int(PCSCD_PIDFILE.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if _pid_is_pcscd(pid):
            raise PcscdUnavailable(f"pcscd (pid {pid}) runs but does not answer on "
                                   f"{PCSCD_SOCKET}; stop it first")
        for path in (PCSCD_PIDFILE, PCSCD_SOCKET):
            path.unlink(missing_ok=True)

    def _hold(self) -> None:
        if self._keeper is None:
            hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if hresult == scard.SCARD_S_SUCCESS:
                self._keeper = context

    # -- take down ------------------------------------------------------------------------
    def stop(self, timeout: float = 5.0) -> None:
        """Stop our pcscd (every reader disappears, every vpcd card is dropped)."""
        if self._keeper is not None:
            scard.SCardReleaseContext(self._keeper)
            self._keeper = None
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        # pcscd removes its socket on the way out; wait so the next start sees it gone.
        deadline = time.monotonic() + timeout
        while socket_answers() and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self, timeout: float = 10.0) -> Pcscd:
        self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        if self.managed:
            return self.process is not None and self.process.poll() is None
        return self._keeper is not None and socket_answers()

    def require_managed(self) -> None:
        """Skip the calling test when pcscd is the system's and must not be stopped."""
        if not self.managed:
            pytest.skip("a system pcscd is in use; this test stops pcscd")

    # -- waiting on state -----------------------------------------------------------------
    def wait_for_readers(self, timeout: float = 10.0) -> list[str]:
        """Wait until pcscd lists the vpcd readers and vpcd accepts connections."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise PcscdUnavailable(f"pcscd exited with {self.process.returncode}:\n"
                                       f"{self.log_tail()}")
            readers = _list_readers()
            if isinstance(readers, list):
                if self.reader in readers and _listening(self.port):
                    return readers
                last = f"readers {readers}"
            else:
                last = readers
            time.sleep(0.05)
        if not self.managed:
            raise PcscdUnavailable(
                f"a pcscd that is not ours runs without {self.reader!r} ({last}); it reads "
                f"{self.config} only at start: restart it (systemctl restart pcscd)")
        raise PcscdUnavailable(f"vpcd reader {self.reader!r} did not appear within "
                               f"{timeout:.0f} s ({last}); pcscd log:\n{self.log_tail()}")

    def wait_for_card(self, present: bool = True, reader: str | None = None,
                      timeout: float = 5.0) -> bytes:
        """Wait until pcscd reports a card in (or no card in) ``reader``; the ATR or b""."""
        reader = reader or self.reader
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            raise PcscdUnavailable(f"no PC/SC service (0x{hresult & 0xFFFFFFFF:08X})")
        try:
            state = scard.SCARD_STATE_UNAWARE
            deadline = time.monotonic() + timeout
            while True:
                remaining = int((deadline - time.monotonic()) * 1000)
                hresult, states = scard.SCardGetStatusChange(
                    context, max(remaining, 0) if state else 0, [(reader, state)])
                if hresult == scard.SCARD_S_SUCCESS:
                    _name, event, atr = states[0]
                    if bool(event & scard.SCARD_STATE_PRESENT) == present:
                        return bytes(atr) if present else b""
                    state = event & ~scard.SCARD_STATE_CHANGED
                if remaining <= 0 or hresult not in (scard.SCARD_S_SUCCESS,
                                                     scard.SCARD_E_TIMEOUT):
                    raise TimeoutError(f"{reader}: card still {'absent' if present else 'present'}"
                                       f" after {timeout:.1f} s")
        finally:
            scard.SCardReleaseContext(context)

    def port_of(self, reader: str) -> int:
        """vpcd gives slot n the configured port + n."""
        return self.port + self.readers.index(reader)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _list_readers() -> list[str] | str:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return f"no service (0x{hresult & 0xFFFFFFFF:08X})"
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        return list(readers) if hresult == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


def _listening(port: int, unknown: bool = True) -> bool:
    """Whether a TCP socket listens on ``port``, read from /proc: a probe connection would
    itself be a card insertion to vpcd. ``unknown`` when /proc cannot tell."""
    try:
        with open("/proc/net/tcp") as table:
            rows = [row.split() for row in table.read().splitlines()[1:]]
    except OSError:
        return unknown
    return any(row[1].endswith(f":{port:04X}") and row[3] == "0A" for row in rows)


class PcscdRunLock:
    """Serialises tests that use pcscd across concurrent pytest runs on one machine: there
    is one pcscd and one vpcd port, so two runs would insert cards into each other's tests
    and stop each other's daemon."""

    def __init__(self, path: Path = LOCK_PATH) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout: float = 600.0) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise PcscdUnavailable(f"another test run held {self.path} for "
                                           f"{timeout:.0f} s") from None
                time.sleep(0.05)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# -- pytest fixtures ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def pcscd_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """The session's handle on pcscd; started on first use by ``pcscd``, stopped at the end
    if it is ours."""
    service = Pcscd(tmp_path_factory.mktemp("pcscd") / "pcscd.log")
    yield service
    lock = PcscdRunLock()
    lock.acquire()
    try:
        service.stop()  # a pcscd we only adopted is let go of, never stopped
    finally:
        lock.release()


@pytest.fixture
def pcscd(pcscd_service: Pcscd) -> Iterator[Pcscd]:
    """pcscd running with the vpcd readers, this test alone using it; (re)started if a
    previous test stopped it."""
    lock = PcscdRunLock()
    lock.acquire()
    try:
        try:
            pcscd_service.start()
        except PcscdUnavailable as exc:
            pytest.fail(str(exc))
        yield pcscd_service
    finally:
        lock.release()


@pytest.fixture
def vpcd_card_factory(pcscd: Pcscd) -> Iterator[Callable[..., VirtualCardClient]]:
    """``make(card, *, insert=True, reader=None, fast_ack=True) -> VirtualCardClient``.

    With ``insert`` the call returns once pcscd reports the card present. At the end of the
    test every card is removed and pcscd has seen the readers empty again.
    """
    clients: list[tuple[VirtualCardClient, str]] = []

    def make(card: VirtualCard, *, insert: bool = True, reader: str | None = None,
             fast_ack: bool = True) -> VirtualCardClient:
        reader = reader or pcscd.reader
        client = VirtualCardClient(card, port=pcscd.port_of(reader), fast_ack=fast_ack)
        clients.append((client, reader))
        if insert:
            client.insert()
            pcscd.wait_for_card(True, reader)
        return client

    yield make
    for client, reader in clients:
        was_in = client.inserted
        client.remove()
        if was_in and pcscd.running:
            pcscd.wait_for_card(False, reader)


__all__ = ["Pcscd", "PcscdUnavailable", "PcscdRunLock", "VirtualCardClient", "pcscd",
           "pcscd_service", "socket_answers", "vpcd_card_factory", "vpcd_port"]
