"""A private cupsd for driver tests: its own config, spool, socket and backends.

Nothing of the system's CUPS is used or changed, so a CUPS already running here (Debian's
postinst may have started one) is left alone: the private cupsd listens on its own socket and a
free loopback port, reads ServerRoot/ServerBin from a temporary directory (the backend directory
holds a link to cups-pdf and a copy of ``cups_test_backend``). The one global file is cups-pdf's
instance config ``/etc/cups/cups-pdf-<instance>.conf`` (cups-pdf reads its config only from
/etc/cups); it is new, named for this run, and removed at the end.

Fixtures:
- ``cupsd`` (session): the running server (``CupsServer``); skipped when cupsd is not installed
  or the tests do not run as root (cupsd drops to ``lp`` for filters and needs root to do so).
- ``cups_pdf_queue`` (session): an A4 cups-pdf queue; ``.folder`` receives the PDFs.
- ``cups_test_queue`` (per test): a raw queue on the scriptable test backend; ``.control(...)``
  scripts the next jobs, ``.folder`` receives each job as ``job-<id>.out``.
- ``cups_ipp_queue`` (per test): ``(front, printer)``: the ``front`` queue's device URI is
  ``ipp://127.0.0.1:<port>/printers/<printer>``, so the private cupsd itself plays an IPP
  printer whose printer-state-reasons a job on ``printer`` (test backend) sets.
"""

from __future__ import annotations

import contextlib
import grp
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BACKEND_SOURCE = Path(__file__).with_name("cups_test_backend")
BACKEND_SCHEME = "zizhu-test"
PDF_PPD = "lsb/usr/cups-pdf/CUPS-PDF_opt.ppd"
CUPS_LIB = Path("/usr/lib/cups")
CUPS_PDF_BACKEND = CUPS_LIB / "backend" / "cups-pdf"
CUPS_PDF_CONF_DIR = Path("/etc/cups")
_START_TIMEOUT_S = 15.0
# cups-pdf's default gs call plus one PostScript line: pdftocairo's PostScript gives the ASCII
# and the CJK subset of a font the same FontName, gs' pdfwrite then merges them and writes the
# ASCII one as a Type 3 font without ToUnicode (the digits no longer read back). Naming each
# font after its resource key keeps them apart. Test peer only: a real printer never sees this.
_UNIQUE_FONT_NAMES = ("/definefont { 1 index type /nametype eq 1 index wcheck and "
                      "{ dup /FontName 3 index put } if systemdict /definefont get exec } bind def")
_GS_CALL = ('%s -q -dCompatibilityLevel=%s -dNOPAUSE -dBATCH -dSAFER -sDEVICE=pdfwrite '
            '-sOutputFile="%s" -dAutoRotatePages=/PageByPage -dAutoFilterColorImages=false '
            f'-dColorImageFilter=/FlateEncode -dPDFSETTINGS=/prepress -c "{_UNIQUE_FONT_NAMES}" '
            '-f %s')
_names = itertools.count(1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CupsQueue:
    name: str
    folder: Path  # where this queue's output lands
    server: CupsServer

    def control(self, **settings: object) -> None:
        """Script the test backend for the following jobs: ``state="media-empty-error"``,
        ``clear=...``, ``sleep=20``, ``exit=1``; no settings: behave."""
        path = self.folder / "control"
        if not settings:
            path.unlink(missing_ok=True)
            return
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), encoding="ascii")

    def outputs(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir()
                      if p.is_file() and p.name != "control" and not p.name.endswith(".part"))

    def jobs(self, which: str = "all") -> dict[int, dict[str, object]]:
        return self.server.jobs(self.name, which)

    def attributes(self) -> dict[str, object]:
        return self.server.connection().getPrinterAttributes(self.name)

    def print_file(self, path: Path, title: str = "direct") -> int:
        """A job from outside the driver under test (as another program would send)."""
        return int(self.server.connection().printFile(self.name, str(path), title, {}))

    def wait_job(self, job_id: int, timeout: float = 10.0) -> int:
        """Wait until the job is finished; returns its job-state (7, 8 or 9)."""
        conn = self.server.connection()
        deadline = time.monotonic() + timeout
        while True:
            job_state = int(conn.getJobAttributes(job_id, requested_attributes=["job-state"])
                            ["job-state"])
            if job_state >= 7:
                return job_state
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still in state {job_state}")
            time.sleep(0.05)


@dataclass
class CupsServer:
    base: Path
    socket: Path
    port: int
    process: subprocess.Popen[bytes]
    pdf_instance: str
    queues: list[str] = field(default_factory=list)

    @property
    def server(self) -> str:
        """What the driver's ``server=`` option takes."""
        return str(self.socket)

    @property
    def error_log(self) -> Path:
        return self.base / "log" / "error_log"

    def env(self) -> dict[str, str]:
        return {**os.environ, "CUPS_SERVER": str(self.socket)}

    def connection(self):  # noqa: ANN201 - pycups has no type stubs
        import cups

        return cups.Connection(host=str(self.socket))

    def run(self, *command: str) -> str:
        done = subprocess.run(command, env=self.env(), capture_output=True, text=True,
                              timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def lpadmin(self, *args: str) -> None:
        self.run("lpadmin", *args)

    def jobs(self, queue: str, which: str = "all") -> dict[int, dict[str, object]]:
        jobs = self.connection().getJobs(
            which_jobs=which, requested_attributes=["job-id", "job-state", "job-printer-uri"])
        return {job_id: attrs for job_id, attrs in jobs.items()
                if str(attrs.get("job-printer-uri", "")).endswith(f"/printers/{queue}")}

    def add_pdf_queue(self, name: str) -> CupsQueue:
        folder = self.base / "out" / name
        folder.mkdir(parents=True)
        conf = CUPS_PDF_CONF_DIR / f"cups-pdf-{self.pdf_instance}.conf"
        # One cups-pdf instance per run; every PDF queue of it writes to the first folder.
        if not conf.exists():
            conf.write_text(f"Out {folder}\nAnonDirName {folder}\n"
                            f"Spool {self.base / 'cups-pdf-spool'}\nLog {self.base / 'log'}\n"
                            f"GSCall {_GS_CALL}\n", encoding="ascii")
        # pdftops-renderer pdftocairo: poppler's own pdftops (the default) and gs write the CJK
        # glyphs without names, so the PDF that gs makes of the PostScript has no ToUnicode for
        # them and pdftotext reads no Chinese back (the page looks the same either way).
        self.lpadmin("-p", name, "-E", "-v", f"cups-pdf:/{self.pdf_instance}", "-m", PDF_PPD,
                     "-o", "media=A4", "-o", "printer-error-policy=abort-job",
                     "-o", "pdftops-renderer-default=pdftocairo")
        self.queues.append(name)
        return CupsQueue(name, folder, self)

    def add_test_queue(self, name: str) -> CupsQueue:
        folder = self.base / "test-printers" / name
        folder.mkdir(parents=True)
        # Raw (no PPD): the backend gets the driver's PDF as it was sent. abort-job: a failing
        # backend ends the job instead of stopping the queue (stop-printer, CUPS' default).
        self.lpadmin("-p", name, "-E", "-v", f"{BACKEND_SCHEME}:{folder}",
                     "-o", "printer-error-policy=abort-job")
        self.queues.append(name)
        return CupsQueue(name, folder, self)

    def add_ipp_queue(self, name: str, printer: CupsQueue) -> CupsQueue:
        folder = self.base / "test-printers" / name
        folder.mkdir(parents=True)
        self.lpadmin("-p", name, "-E", "-v",
                     f"ipp://127.0.0.1:{self.port}/printers/{printer.name}",
                     "-o", "printer-error-policy=abort-job")
        self.queues.append(name)
        return CupsQueue(name, folder, self)

    def delete_queue(self, name: str) -> None:
        conn = self.connection()
        for job_id in self.jobs(name, "not-completed"):
            with contextlib.suppress(Exception):
                conn.cancelJob(job_id, purge_job=True)
        with contextlib.suppress(Exception):
            conn.deletePrinter(name)
        if name in self.queues:
            self.queues.remove(name)

    def unique_name(self, prefix: str) -> str:
        return f"{prefix}-{os.getpid()}-{next(_names)}"


def _write_config(base: Path, sock: Path, port: int) -> tuple[Path, Path]:
    root = base / "root"
    root.mkdir(mode=0o755)
    (root / "cupsd.conf").write_text(
        "LogLevel debug\n"
        f"Listen {sock}\n"
        f"Listen 127.0.0.1:{port}\n"
        "Browsing No\nWebInterface No\nDefaultAuthType Basic\n"
        "PreserveJobHistory Yes\nMaxJobs 0\n"
        "<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
        "<Policy default>\n"
        "  JobPrivateAccess all\n  JobPrivateValues none\n"
        "  SubscriptionPrivateAccess all\n  SubscriptionPrivateValues none\n"
        "  <Limit All>\n    Order deny,allow\n  </Limit>\n"
        "</Policy>\n", encoding="ascii")
    (root / "cups-files.conf").write_text(
        "SystemGroup root\n"
        f"ServerRoot {root}\n"
        f"ServerBin {base / 'bin'}\n"
        f"RequestRoot {base / 'spool'}\n"
        f"CacheDir {base / 'cache'}\n"
        f"StateDir {base / 'state'}\n"
        f"TempDir {base / 'tmp'}\n"
        f"Printcap {base / 'printcap'}\n"
        f"AccessLog {base / 'log' / 'access_log'}\n"
        f"ErrorLog {base / 'log' / 'error_log'}\n"
        f"PageLog {base / 'log' / 'page_log'}\n", encoding="ascii")
    return root / "cupsd.conf", root / "cups-files.conf"


def _server_bin(base: Path) -> None:
    """ServerBin: the system's filters and helpers, and a backend directory of our own."""
    bin_dir = base / "bin"
    backends = bin_dir / "backend"
    backends.mkdir(parents=True, mode=0o755)
    bin_dir.chmod(0o755)
    for sub in ("filter", "cgi-bin", "daemon", "driver", "monitor", "notifier"):
        if (CUPS_LIB / sub).exists():
            (bin_dir / sub).symlink_to(CUPS_LIB / sub)
    for name in ("cups-pdf", "ipp", "ipps"):
        if (CUPS_LIB / "backend" / name).exists():
            (backends / name).symlink_to(CUPS_LIB / "backend" / name)
    # Mode 0700, owned by root: cupsd runs it as root (0755 would run it as lp, which cannot
    # write into the test's folders) and refuses backends others can write to.
    target = backends / BACKEND_SCHEME
    shutil.copyfile(BACKEND_SOURCE, target)
    target.chmod(0o700)


def _remove_stale_pdf_configs() -> None:
    """Instance configs left by an earlier run that was killed before its teardown."""
    for conf in CUPS_PDF_CONF_DIR.glob("cups-pdf-zizhu*.conf"):
        pid = conf.stem.removeprefix("cups-pdf-zizhu")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            conf.unlink(missing_ok=True)


def _wait_ready(process: subprocess.Popen[bytes], sock: Path, error_log: Path) -> None:
    import cups

    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            tail = error_log.read_text(errors="replace")[-2000:] if error_log.exists() else ""
            raise RuntimeError(f"cupsd exited ({process.returncode}):\n{tail}")
        if sock.exists():
            try:
                cups.Connection(host=str(sock)).getPrinters()
                return
            except (RuntimeError, cups.IPPError):
                pass
        if time.monotonic() > deadline:
            raise RuntimeError("cupsd did not come up")
        time.sleep(0.05)


@contextlib.contextmanager
def running_cupsd() -> Iterator[CupsServer]:
    """Start a private ``cupsd -f``; stop it and remove everything it used afterwards."""
    # Outside pytest's 0700 temp tree: filters run as lp and must reach the spool and TempDir.
    base = Path(tempfile.mkdtemp(prefix="zizhu-cupsd-"))
    base.chmod(0o755)
    process: subprocess.Popen[bytes] | None = None
    instance = f"zizhu{os.getpid()}"
    try:
        _remove_stale_pdf_configs()
        for sub in ("log", "out", "test-printers"):
            (base / sub).mkdir(mode=0o755)
        # TempDir must exist; filters (user lp) write their temporary files there.
        tmp = base / "tmp"
        tmp.mkdir()
        os.chown(tmp, 0, grp.getgrnam("lp").gr_gid)
        tmp.chmod(0o1770)
        _server_bin(base)
        sock, port = base / "cups.sock", _free_port()
        cupsd_conf, files_conf = _write_config(base, sock, port)
        process = subprocess.Popen(["cupsd", "-f", "-c", str(cupsd_conf), "-s", str(files_conf)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=(base / "log" / "stderr").open("wb"))
        _wait_ready(process, sock, base / "log" / "error_log")
        yield CupsServer(base, sock, port, process, instance)
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        (CUPS_PDF_CONF_DIR / f"cups-pdf-{instance}.conf").unlink(missing_ok=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def cupsd() -> Iterator[CupsServer]:
    if shutil.which("cupsd") is None or shutil.which("lpadmin") is None:
        pytest.skip("cupsd/lpadmin not installed (apt-get install cups)")
    if os.geteuid() != 0:
        pytest.skip("a private cupsd needs root (it runs filters as lp)")
    pytest.importorskip("cups")
    with running_cupsd() as server:
        yield server


@pytest.fixture(scope="session")
def cups_pdf_queue(cupsd: CupsServer) -> CupsQueue:
    if not CUPS_PDF_BACKEND.exists():
        pytest.skip("cups-pdf not installed (apt-get install printer-driver-cups-pdf)")
    return cupsd.add_pdf_queue(cupsd.unique_name("zizhu-pdf"))


@pytest.fixture
def cups_test_queue(cupsd: CupsServer) -> Iterator[CupsQueue]:
    queue = cupsd.add_test_queue(cupsd.unique_name("zizhu-test"))
    yield queue
    cupsd.delete_queue(queue.name)


@pytest.fixture
def cups_ipp_queue(cupsd: CupsServer) -> Iterator[tuple[CupsQueue, CupsQueue]]:
    printer = cupsd.add_test_queue(cupsd.unique_name("zizhu-ipp-printer"))
    front = cupsd.add_ipp_queue(cupsd.unique_name("zizhu-ipp"), printer)
    yield front, printer
    cupsd.delete_queue(front.name)
    cupsd.delete_queue(printer.name)
